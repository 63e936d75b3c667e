"""`skiff explain pod/x`: the paragraph a learner reads, and why a node was chosen."""

from __future__ import annotations

from typing import Any

import pytest

from cli.explain import pod_paragraph, scheduling_table, why_node


def pod(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict:
    return {
        "metadata": {"name": "x", "namespace": "default"},
        "spec": spec or {},
        "status": status or {"phase": "Pending"},
    }


RECORD = {
    "details": {
        "node": "big",
        "nodesLookedAt": 3,
        "filters": {
            "small": [["NodeUnschedulable", ""], ["NodeResourcesFit", "Insufficient cpu"]],
            "big": [["NodeUnschedulable", ""], ["NodeResourcesFit", ""]],
            "mid": [["NodeUnschedulable", ""], ["NodeResourcesFit", ""]],
        },
        "scores": {
            "big": {
                "NodeResourcesFit": {"raw": 90, "normalized": 100.0, "weighted": 100.0},
                "TaintToleration": {"raw": 0, "normalized": 100.0, "weighted": 300.0},
            },
            "mid": {
                "NodeResourcesFit": {"raw": 40, "normalized": 0.0, "weighted": 0.0},
                "TaintToleration": {"raw": 0, "normalized": 100.0, "weighted": 300.0},
            },
        },
    }
}


@pytest.mark.parametrize(
    ("the_pod", "words"),
    [
        (
            pod(
                status={
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "message": "0/2 nodes are available: 2 Insufficient cpu.",
                        }
                    ],
                }
            ),
            ["Pending because the scheduler found no node", "2 Insufficient cpu"],
        ),
        (pod(), ["not yet scheduled", "loop paused"]),
        (
            pod(
                {"nodeName": "n1"},
                {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": "app",
                            "restartCount": 4,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
                        }
                    ],
                },
            ),
            ["crash-looping", "exited 4 times", "exit code 3 (Error)", "--previous"],
        ),
        (
            pod(
                {"nodeName": "n1"},
                {
                    "phase": "Pending",
                    "containerStatuses": [
                        {
                            "name": "app",
                            "state": {
                                "waiting": {
                                    "reason": "ImagePullBackOff",
                                    "message": "no such image",
                                }
                            },
                        }
                    ],
                },
            ),
            ["container app is waiting, ImagePullBackOff: no such image"],
        ),
        (pod({"nodeName": "big"}, {"phase": "Running"}), ["Running on big", "scored highest"]),
    ],
)
def test_pod_paragraph(the_pod: dict[str, Any], words: list[str]) -> None:
    text = pod_paragraph(the_pod, RECORD)
    for w in words:
        assert w in text, text


def test_why_node_names_the_winner_and_its_biggest_score() -> None:
    assert why_node(RECORD) == (
        "big: 2 of 3 nodes passed the filters; it scored highest (400, most from "
        "TaintToleration (300))"
    )
    assert why_node(None) == ""


def test_scheduling_table_shows_verdicts_and_each_plugins_scores() -> None:
    lines = scheduling_table(RECORD)
    assert "  small: filtered out by NodeResourcesFit: Insufficient cpu" in lines
    assert "  big: passed 2 filters; total score 400  <- chosen" in lines
    assert any("NodeResourcesFit" in ln and "raw 90" in ln and "weighted 100" in ln for ln in lines)
