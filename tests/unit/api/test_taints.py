"""Toleration matching, as the scheduler, the node-lifecycle controller and the kubelet use it."""

from __future__ import annotations

import pytest

from api.taints import matching_toleration, tolerated, toleration_matches

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "matches"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, True),  # Equal by default
        ({"key": "dedicated", "value": "gpu"}, True),  # no effect: every effect
        ({"key": "dedicated", "value": "cpu"}, False),
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"key": "other", "operator": "Exists"}, False),
        ({"operator": "Exists"}, True),  # empty key with Exists: every taint
        ({"operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "dedicated", "value": "gpu", "effect": "NoExecute"}, False),
    ],
)
def test_toleration_matches(toleration: dict, matches: bool) -> None:
    assert toleration_matches(toleration, TAINT) is matches


def test_value_absent_on_both_sides_is_equal() -> None:
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    assert toleration_matches({"key": "node-role.kubernetes.io/control-plane"}, taint)
    assert not toleration_matches(
        {"key": "node-role.kubernetes.io/control-plane", "value": "x"}, taint
    )


def test_tolerated_and_matching_toleration() -> None:
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    wait = {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    pod = {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}, wait]}}
    assert tolerated(unreachable, pod["spec"]["tolerations"])
    assert not tolerated(TAINT, pod["spec"]["tolerations"])
    assert matching_toleration(pod, unreachable) == wait
    assert matching_toleration(pod, TAINT) is None
    assert matching_toleration({"spec": {}}, unreachable) is None
