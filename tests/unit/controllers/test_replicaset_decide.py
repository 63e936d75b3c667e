"""The ReplicaSet controller's decisions, over tables of situations."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controllers.replicaset import (
    AdoptPod,
    CreatePods,
    DeletePod,
    ReleasePod,
    UpdateStatus,
    decide,
    deletion_rank,
    seconds_until_available,
)

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)
RS_UID = "rs-uid"


def rs(replicas: int, generation: int = 1, status: dict | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": RS_UID,
            "generation": generation,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}},
        },
        "status": status or {},
    }


def pod(
    name: str,
    *,
    owned: bool = True,
    labels: dict | None = None,
    node: str = "",
    phase: str = "Pending",
    ready_since: str = "",
    created: str = "2026-11-24T11:00:00Z",
    deleting: bool = False,
    restarts: int = 0,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "labels": {"app": "web"} if labels is None else labels,
        "creationTimestamp": created,
    }
    if owned:
        meta["ownerReferences"] = [
            {"kind": "ReplicaSet", "name": "web", "uid": RS_UID, "controller": True}
        ]
    if deleting:
        meta["deletionTimestamp"] = "2026-11-24T12:00:00Z"
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [{"restartCount": restarts}]}
    if ready_since:
        status["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": ready_since}
        ]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def scaling(actions: list) -> list:
    return [a for a in actions if not isinstance(a, UpdateStatus)]


@pytest.mark.parametrize(
    ("replicas", "existing", "expected"),
    [
        (3, 0, [CreatePods(3)]),
        (3, 1, [CreatePods(2)]),
        (3, 3, []),
        (1000, 0, [CreatePods(500)]),  # a burst at most per sync
    ],
)
def test_creates_what_is_missing(replicas: int, existing: int, expected: list) -> None:
    pods = [pod(f"p{i}") for i in range(existing)]
    assert scaling(decide(rs(replicas), pods, NOW)) == expected


def test_terminating_and_finished_pods_do_not_count() -> None:
    pods = [pod("a", deleting=True), pod("b", phase="Succeeded"), pod("c", phase="Running")]
    assert scaling(decide(rs(2), pods, NOW)) == [CreatePods(1)]


def test_deletes_in_kubernetes_order() -> None:
    pods = [
        pod("ready-old", node="n", phase="Running", ready_since="2026-11-24T10:00:00Z"),
        pod("ready-new", node="n", phase="Running", ready_since="2026-11-24T11:59:00Z"),
        pod("running-not-ready", node="n", phase="Running"),
        pod("pending-on-node", node="n"),
        pod("unscheduled"),
    ]
    actions = scaling(decide(rs(1), pods, NOW))
    assert [a.name for a in actions] == [
        "unscheduled",
        "pending-on-node",
        "running-not-ready",
        "ready-new",
    ]
    assert all(isinstance(a, DeletePod) for a in actions)


def test_more_restarts_and_newer_go_first() -> None:
    a = pod("calm", node="n", phase="Running", created="2026-11-24T10:00:00Z")
    b = pod("flappy", node="n", phase="Running", restarts=5, created="2026-11-24T10:00:00Z")
    c = pod("young", node="n", phase="Running", created="2026-11-24T11:59:00Z")
    ranked = sorted([a, b, c], key=lambda p: deletion_rank(p, NOW))
    assert [p["metadata"]["name"] for p in ranked] == ["flappy", "young", "calm"]


def test_adopts_matching_orphans_and_releases_mislabelled() -> None:
    pods = [pod("orphan", owned=False), pod("moved", labels={"app": "other"})]
    actions = scaling(decide(rs(1), pods, NOW))
    assert AdoptPod("orphan") in actions
    assert ReleasePod("moved") in actions
    assert not any(isinstance(a, CreatePods) for a in actions)  # the orphan counts


def test_waits_for_expectations() -> None:
    assert scaling(decide(rs(3), [], NOW, may_scale=False)) == []


def test_status_counts_and_observed_generation() -> None:
    pods = [pod("a", phase="Running", ready_since="2026-11-24T11:00:00Z"), pod("b")]
    actions = decide(rs(2, generation=4), pods, NOW)
    status = next(a for a in actions if isinstance(a, UpdateStatus)).status
    assert status == {
        "replicas": 2,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "observedGeneration": 4,
    }
    current = rs(2, generation=4, status=status)
    assert not any(isinstance(a, UpdateStatus) for a in decide(current, pods, NOW))


def with_min_ready(seconds: int) -> dict[str, Any]:
    r = rs(3)
    r["spec"]["minReadySeconds"] = seconds
    return r


@pytest.mark.parametrize(
    ("min_ready", "pods", "wait"),
    [
        (0, [pod("a", ready_since="2026-11-24T11:59:59Z")], None),  # available once Ready
        (10, [pod("a")], None),  # nothing Ready: a status change will come
        (10, [pod("a", ready_since="2026-11-24T11:59:50Z")], None),  # already available
        (10, [pod("a", ready_since="2026-11-24T11:59:57Z")], 7.0),
        # The earliest of several pods waiting.
        (
            10,
            [
                pod("a", ready_since="2026-11-24T11:59:57Z"),
                pod("b", ready_since="2026-11-24T11:59:52Z"),
                pod("c", ready_since="2026-11-24T11:00:00Z"),
            ],
            2.0,
        ),
        # Pods that are not this ReplicaSet's, or are terminating, are not waited for.
        (10, [pod("x", owned=False, ready_since="2026-11-24T11:59:57Z")], None),
        (10, [pod("d", deleting=True, ready_since="2026-11-24T11:59:57Z")], None),
    ],
)
def test_comes_back_when_min_ready_seconds_runs_out(
    min_ready: int, pods: list, wait: float | None
) -> None:
    assert seconds_until_available(with_min_ready(min_ready), pods, NOW) == wait


def test_waiting_pod_is_ready_but_not_yet_available() -> None:
    pods = [pod("a", ready_since="2026-11-24T11:59:57Z")]
    status = next(a for a in decide(with_min_ready(10), pods, NOW) if isinstance(a, UpdateStatus))
    assert status.status["readyReplicas"] == 1 and status.status["availableReplicas"] == 0
    later = NOW + datetime.timedelta(seconds=7)
    status = next(a for a in decide(with_min_ready(10), pods, later) if isinstance(a, UpdateStatus))
    assert status.status["availableReplicas"] == 1
