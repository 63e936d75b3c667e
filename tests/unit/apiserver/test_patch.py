"""Merge patch (RFC 7386) and strategic merge patch, as kubectl sends them."""

from __future__ import annotations

import pytest

from apiserver import errors
from apiserver.patch import json_patch, merge_patch, strategic_merge_patch


def test_merge_patch_rfc7386_examples() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": "b"}, {"a": {"c": None}}) == {"a": {}}


def test_json_patch_test_failure_is_422() -> None:
    with pytest.raises(errors.ApiError) as e:
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert e.value.code == 422


def test_json_patch_must_be_a_list() -> None:
    with pytest.raises(errors.ApiError) as e:
        json_patch({"a": 1}, {"op": "add"})
    assert e.value.code == 400


POD = {
    "metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "busybox:1",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "A", "value": "1"}],
            },
            {"name": "side", "image": "busybox:1"},
        ],
        "tolerations": [{"key": "k", "operator": "Exists"}],
    },
}


def test_smp_merges_containers_by_name_and_ports_by_container_port() -> None:
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "ports": [{"containerPort": 443}],
                    "env": [{"name": "B", "value": "2"}],
                },
                {"name": "new", "image": "nginx"},
            ]
        }
    }
    out = strategic_merge_patch(None, POD, patch)
    containers = {c["name"]: c for c in out["spec"]["containers"]}
    assert list(containers) == ["main", "side", "new"]
    assert containers["main"]["image"] == "busybox:1"
    assert [p["containerPort"] for p in containers["main"]["ports"]] == [80, 443]
    assert [e["name"] for e in containers["main"]["env"]] == ["A", "B"]
    # Lists without a merge key are replaced, as in Kubernetes.
    out = strategic_merge_patch(None, POD, {"spec": {"tolerations": []}})
    assert out["spec"]["tolerations"] == []


def test_smp_directives() -> None:
    delete = {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}
    out = strategic_merge_patch(None, POD, delete)
    assert [c["name"] for c in out["spec"]["containers"]] == ["main"]
    replace = {"metadata": {"labels": {"$patch": "replace", "b": "2"}}}
    assert strategic_merge_patch(None, POD, replace)["metadata"]["labels"] == {"b": "2"}
    order = {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}]}}
    out = strategic_merge_patch(None, POD, order)
    assert [c["name"] for c in out["spec"]["containers"]] == ["side", "main"]
    prim = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    assert strategic_merge_patch(None, POD, prim)["metadata"]["finalizers"] == []
    assert strategic_merge_patch(None, POD, {"metadata": {"finalizers": ["y"]}})["metadata"][
        "finalizers"
    ] == ["x", "y"]
    # The input is never changed in place.
    assert [c["name"] for c in POD["spec"]["containers"]] == ["main", "side"]


def test_smp_element_without_merge_key_is_400() -> None:
    with pytest.raises(errors.ApiError) as e:
        strategic_merge_patch(None, POD, {"spec": {"containers": [{"image": "x"}]}})
    assert e.value.code == 400
