"""nodeSelector and node affinity against a Node, as the scheduler and kubelet check them."""

from __future__ import annotations

from typing import Any

import pytest

from api.nodeaffinity import match_expression, pod_fits_node, term_matches

NODE = {
    "metadata": {
        "name": "node-a",
        "labels": {"kubernetes.io/hostname": "node-a", "disk": "ssd", "cores": "8"},
    }
}


@pytest.mark.parametrize(
    ("key", "op", "values", "matches"),
    [
        ("disk", "In", ["ssd", "nvme"], True),
        ("disk", "In", ["hdd"], False),
        ("zone", "In", ["x"], False),
        ("disk", "NotIn", ["ssd"], False),
        ("zone", "NotIn", ["x"], True),  # an absent label is not in any set
        ("disk", "Exists", [], True),
        ("zone", "Exists", [], False),
        ("zone", "DoesNotExist", [], True),
        ("cores", "Gt", ["3"], True),
        ("cores", "Lt", ["3"], False),
        ("disk", "Gt", ["3"], False),  # not an integer
        ("disk", "Bogus", ["ssd"], False),
    ],
)
def test_match_expression(key: str, op: str, values: list[str], matches: bool) -> None:
    labels = NODE["metadata"]["labels"]
    assert match_expression({"key": key, "operator": op, "values": values}, labels) is matches


def test_term_matches_fields_and_empty_term() -> None:
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}
    assert term_matches(by_name, NODE)
    both = {**by_name, "matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}
    assert not term_matches(both, NODE)  # everything in a term must hold
    assert not term_matches({}, NODE)  # an empty term matches nothing


def pod(selector: dict | None = None, terms: list | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if selector is not None:
        spec["nodeSelector"] = selector
    if terms is not None:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    return {"metadata": {"name": "p"}, "spec": spec}


HDD = {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}
SSD = {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}


@pytest.mark.parametrize(
    ("p", "fits"),
    [
        (pod(), True),
        (pod({"disk": "ssd"}), True),
        (pod({"disk": "ssd", "zone": "x"}), False),
        (pod(terms=[HDD]), False),
        (pod(terms=[HDD, SSD]), True),  # terms are ORed
        (pod({"disk": "hdd"}, [SSD]), False),  # selector and affinity must both hold
        (pod(terms=[]), True),  # no terms: no constraint
    ],
)
def test_pod_fits_node(p: dict, fits: bool) -> None:
    assert pod_fits_node(p, NODE) is fits
