"""The pod garbage collector's choices, as Kubernetes' podgc makes them."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.podgc import QUARANTINE, decide, failed_status, quarantine


def pod(
    name: str,
    node: str = "",
    phase: str = "Running",
    created: str = "2026-01-01T00:00:00Z",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "creationTimestamp": created,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


@pytest.mark.parametrize(
    ("pods", "nodes", "threshold", "want"),
    [
        # A pod on a node that exists stays; one on a deleted node goes.
        ([pod("a", "n1"), pod("b", "gone")], {"n1"}, 12500, [("b", "orphaned")]),
        # Terminating pods on a deleted node too (that is the stuck case).
        ([pod("b", "gone", deleting=True)], set(), 12500, [("b", "orphaned")]),
        # Pending pods that were never scheduled are not orphans.
        ([pod("p")], set(), 12500, []),
        # ...unless they are being deleted: nobody else will finish them.
        ([pod("p", deleting=True)], set(), 12500, [("p", "unscheduled-terminating")]),
        # Terminated pods past the threshold: the oldest go, down to the threshold.
        (
            [
                pod("new", "n1", "Succeeded", "2026-01-03T00:00:00Z"),
                pod("old", "n1", "Failed", "2026-01-01T00:00:00Z"),
                pod("mid", "n1", "Succeeded", "2026-01-02T00:00:00Z"),
                pod("run", "n1", "Running", "2025-01-01T00:00:00Z"),
            ],
            {"n1"},
            1,
            [("old", "terminated"), ("mid", "terminated")],
        ),
        # At or under the threshold nothing goes; 0 turns the rule off.
        ([pod("s", "n1", "Succeeded")], {"n1"}, 1, []),
        ([pod("s", "n1", "Succeeded"), pod("t", "n1", "Failed")], {"n1"}, 0, []),
        # A pod named by two rules is collected once.
        (
            [pod("x", "gone", "Failed", "2026-01-01T00:00:00Z"), pod("y", "n1", "Failed")],
            {"n1"},
            1,
            [("x", "orphaned")],
        ),
    ],
)
def test_decide(
    pods: list[dict[str, Any]], nodes: set[str], threshold: int, want: list[tuple[str, str]]
) -> None:
    assert [(c.name, c.why) for c in decide(pods, nodes, threshold, {"gone"})] == want


def test_a_missing_node_is_gone_only_after_its_quarantine() -> None:
    pods = [pod("a", "late"), pod("b", "n1"), pod("c")]
    missing, gone = quarantine(pods, {"n1"}, {}, now=100.0)
    assert (missing, gone) == ({"late": 100.0}, set())  # first seen missing now
    assert decide(pods, {"n1"}, 12500, gone) == []  # its pods stay meanwhile
    missing, gone = quarantine(pods, {"n1"}, missing, now=100.0 + QUARANTINE - 1)
    assert (missing, gone) == ({"late": 100.0}, set())
    missing, gone = quarantine(pods, {"n1"}, missing, now=100.0 + QUARANTINE)
    assert gone == {"late"}
    assert [(c.name, c.why) for c in decide(pods, {"n1"}, 12500, gone)] == [("a", "orphaned")]
    # The Node turns up (it was being created): forgotten, its clock starts again.
    assert quarantine(pods, {"n1", "late"}, missing, now=500.0) == ({}, set())


def test_orphans_are_marked_failed_with_a_disruption_condition() -> None:
    patch = failed_status(pod("b", "gone"), "2026-01-02T00:00:00Z")["status"]
    assert patch["phase"] == "Failed"
    (cond,) = patch["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "DisruptionTarget",
        "True",
        "DeletionByPodGC",
    )
    # A pod that already ended keeps its phase.
    assert "phase" not in failed_status(pod("s", "gone", "Succeeded"), "t")["status"]
