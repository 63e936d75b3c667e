"""FailedScheduling in an empty cluster reads as kube-scheduler words it."""

from collections import Counter

from scheduler.framework import failure_message


def test_no_nodes() -> None:
    assert failure_message(0, Counter()) == "no nodes available to schedule pods"


def test_some_nodes_unchanged() -> None:
    assert failure_message(2, Counter({"Insufficient cpu": 2})) == (
        "0/2 nodes are available: 2 Insufficient cpu."
    )
