"""Field ownership and server-side apply, over cases from Kubernetes' documented behaviour."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from apiserver import errors
from apiserver.managed_fields import apply, field_paths, render, to_fields_v1, track_update

APPS = SimpleNamespace(api_version="apps/v1")


def deployment(replicas: int = 1, image: str = "nginx:1", labels: dict | None = None) -> dict:
    d: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }
    if labels:
        d["metadata"]["labels"] = labels
    return d


def managers(obj: dict) -> dict[str, dict]:
    return {e["manager"]: e for e in obj["metadata"].get("managedFields", [])}


def test_fields_v1_shape_is_kubernetes() -> None:
    tree = to_fields_v1(field_paths(deployment()))
    container = tree["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert container == {".": {}, "f:image": {}, "f:name": {}}
    assert tree["f:spec"]["f:replicas"] == {}
    assert "f:name" not in tree.get("f:metadata", {})
    assert "f:kind" not in tree and "f:apiVersion" not in tree


def test_render_paths_like_kubectl_prints_them() -> None:
    path = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image")
    assert render(path) == '.spec.template.spec.containers[name="web"].image'


def test_create_by_apply_owns_everything_it_set() -> None:
    obj = apply(APPS, None, deployment(), "alice", force=False)
    entry = managers(obj)["alice"]
    assert entry["operation"] == "Apply"
    assert entry["apiVersion"] == "apps/v1"
    assert entry["fieldsType"] == "FieldsV1"


def test_reapply_without_a_field_removes_it() -> None:
    live = apply(APPS, None, deployment(labels={"a": "1", "b": "2"}), "alice", force=False)
    again = apply(APPS, live, deployment(labels={"a": "1"}), "alice", force=False)
    assert again["metadata"]["labels"] == {"a": "1"}


def test_field_owned_by_someone_else_is_kept_when_dropped() -> None:
    live = apply(APPS, None, deployment(labels={"a": "1"}), "alice", force=False)
    # bob applies the same label value: shared ownership, no conflict.
    live = apply(
        APPS,
        live,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "1"}},
        },
        "bob",
        force=False,
    )
    after = apply(APPS, live, deployment(), "alice", force=False)
    assert after["metadata"]["labels"] == {"a": "1"}


def test_conflict_names_field_and_manager_then_force_takes_over() -> None:
    live = apply(APPS, None, deployment(replicas=1), "alice", force=False)
    bob = deployment(replicas=5)
    with pytest.raises(errors.ApiError) as e:
        apply(APPS, live, bob, "bob", force=False)
    assert e.value.code == 409
    assert e.value.message == (
        'Apply failed with 1 conflict: conflict with "alice" using apps/v1: .spec.replicas'
    )
    assert e.value.details["causes"][0]["field"] == ".spec.replicas"
    forced = apply(APPS, live, bob, "bob", force=True)
    assert forced["spec"]["replicas"] == 5
    alice_fields = managers(forced)["alice"]["fieldsV1"]
    assert "f:replicas" not in alice_fields["f:spec"]
    # Now alice re-applying her old value conflicts with bob.
    with pytest.raises(errors.ApiError):
        apply(APPS, forced, deployment(replicas=1), "alice", force=False)


def test_keyed_list_items_merge_and_drop() -> None:
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox"})
    live = apply(APPS, None, two, "alice", force=False)
    one = apply(APPS, live, deployment(), "alice", force=False)
    names = [c["name"] for c in one["spec"]["template"]["spec"]["containers"]]
    assert names == ["web"]


def test_update_takes_ownership_of_changed_fields() -> None:
    live = apply(APPS, None, deployment(replicas=1), "alice", force=False)
    scaled = dict(live, spec={**live["spec"], "replicas": 3})
    track_update(APPS, live, scaled, "kubectl-scale")
    entries = managers(scaled)
    assert entries["kubectl-scale"]["operation"] == "Update"
    assert entries["kubectl-scale"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entries["alice"]["fieldsV1"]["f:spec"]
    # alice applying replicas again now conflicts with the scaler, as in Kubernetes.
    with pytest.raises(errors.ApiError) as e:
        apply(APPS, scaled, deployment(replicas=1), "alice", force=False)
    assert '"kubectl-scale"' in e.value.message
