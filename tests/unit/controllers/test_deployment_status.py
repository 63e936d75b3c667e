"""The Deployment controller's status and its adoption of orphans, by tables."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controllers import rollout
from controllers.deployment import (
    AdoptReplicaSet,
    CreateReplicaSet,
    UpdateStatus,
    compute_status,
    decide,
    new_replicaset,
)

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)
STAMP = "2026-11-24T12:00:00Z"
EARLIER = "2026-11-24T11:00:00Z"


def deployment(replicas: int = 4, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            **spec,
        },
    }


def rs(name: str, spec: int, replicas: int, ready: int, available: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"replicas": spec},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available},
    }


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


@pytest.mark.parametrize(
    ("new", "old", "counts", "available", "progressing"),
    [
        # complete: every pod of the new ReplicaSet available
        (
            rs("new", 4, 4, 4, 4),
            [],
            (4, 4, 4, 4, 0),
            ("True", "MinimumReplicasAvailable"),
            ("True", "NewReplicaSetAvailable"),
        ),
        # mid-rollout: 3 available of 4 is replicas - maxUnavailable (1): still Available
        (
            rs("new", 2, 2, 1, 1),
            [rs("old", 2, 2, 2, 2)],
            (4, 2, 3, 3, 1),
            ("True", "MinimumReplicasAvailable"),
            ("True", "ReplicaSetUpdated"),
        ),
        # below minimum availability
        (
            rs("new", 4, 4, 0, 0),
            [rs("old", 1, 1, 1, 1)],
            (5, 4, 1, 1, 3),
            ("False", "MinimumReplicasUnavailable"),
            ("True", "ReplicaSetUpdated"),
        ),
        # no new ReplicaSet yet
        (
            None,
            [rs("old", 4, 4, 4, 4)],
            (4, 0, 4, 4, 0),
            ("True", "MinimumReplicasAvailable"),
            ("True", "ReplicaSetUpdated"),
        ),
    ],
)
def test_compute_status_counts_and_conditions(
    new: dict[str, Any] | None,
    old: list[dict[str, Any]],
    counts: tuple[int, int, int, int, int],
    available: tuple[str, str],
    progressing: tuple[str, str],
) -> None:
    d = deployment()
    status = compute_status(d, new, [*old, *([new] if new else [])], NOW)
    got = tuple(
        status[k]
        for k in (
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        )
    )
    assert got == counts
    assert status["observedGeneration"] == 2
    a, p = condition(status, "Available"), condition(status, "Progressing")
    assert (a["status"], a["reason"]) == available
    assert (p["status"], p["reason"]) == progressing


def test_paused_is_progressing_unknown() -> None:
    status = compute_status(deployment(paused=True), None, [], NOW)
    p = condition(status, "Progressing")
    assert (p["status"], p["reason"]) == ("Unknown", "DeploymentPaused")


def _previous(status: str, reason: str, updated: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "Progressing",
            "status": status,
            "reason": reason,
            "lastUpdateTime": updated,
            "lastTransitionTime": updated,
        }
    ]


@pytest.mark.parametrize(
    ("deadline", "moved", "expected"),
    [
        # nothing moved for an hour past a 10-minute deadline: Kubernetes gives up
        (600, False, ("False", "ProgressDeadlineExceeded")),
        (7200, False, ("True", "ReplicaSetUpdated")),  # a 2-hour deadline: not yet
        (600, True, ("True", "ReplicaSetUpdated")),  # the rollout moved: progress
    ],
)
def test_progress_deadline(deadline: int, moved: bool, expected: tuple[str, str]) -> None:
    d = deployment(progressDeadlineSeconds=deadline)
    new = rs("new", 2, 2, 1, 1)
    old = rs("old", 2, 2, 2, 2)
    d["status"] = {
        "updatedReplicas": 2,
        "availableReplicas": 3 if not moved else 2,
        "conditions": _previous("True", "ReplicaSetUpdated", EARLIER),
    }
    status = compute_status(d, new, [old, new], NOW)
    p = condition(status, "Progressing")
    assert (p["status"], p["reason"]) == expected


def test_conditions_keep_their_times_while_unchanged() -> None:
    d = deployment()
    new = rs("new", 4, 4, 4, 4)
    d["status"] = {
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "lastUpdateTime": EARLIER,
                "lastTransitionTime": EARLIER,
            }
        ]
    }
    a = condition(compute_status(d, new, [new], NOW), "Available")
    assert (a["lastUpdateTime"], a["lastTransitionTime"]) == (EARLIER, EARLIER)


def test_the_plan_is_the_rollout_parameters_once() -> None:
    p = rollout.plan(deployment(10))
    assert (p.replicas, p.max_surge, p.max_unavailable, p.strategy) == (10, 3, 2, "RollingUpdate")
    assert (p.max_total, p.min_available) == (13, 8)


def orphan(name: str, labels: dict[str, str]) -> dict[str, Any]:
    made = new_replicaset(deployment(), 1, 4)
    made["metadata"]["name"] = name
    made["metadata"]["labels"] = labels
    made["metadata"].pop("ownerReferences")
    made["metadata"]["uid"] = f"{name}-uid"
    made["status"] = {"replicas": 4, "availableReplicas": 4}
    return made


def test_an_orphan_replicaset_that_matches_is_adopted_in_decide() -> None:
    d = deployment()
    mine = orphan("web-abc", {"app": "web"})
    other = orphan("db-xyz", {"app": "db"})
    actions = decide(d, [mine, other], NOW)
    assert AdoptReplicaSet("web-abc") in actions
    assert AdoptReplicaSet("db-xyz") not in actions
    # Adopted, it is the ReplicaSet of the current template: no new one is made.
    assert not any(isinstance(a, CreateReplicaSet) for a in actions)
    assert any(isinstance(a, UpdateStatus) for a in actions)


def test_an_orphan_being_deleted_is_not_adopted() -> None:
    gone = orphan("web-abc", {"app": "web"})
    gone["metadata"]["deletionTimestamp"] = STAMP
    actions = decide(deployment(), [gone], NOW)
    assert not any(isinstance(a, AdoptReplicaSet) for a in actions)
    assert any(isinstance(a, CreateReplicaSet) for a in actions)


def test_a_replicaset_another_controller_owns_is_left_alone() -> None:
    theirs = orphan("web-abc", {"app": "web"})
    theirs["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "x", "controller": True}
    ]
    actions = decide(deployment(), [theirs], NOW)
    assert not any(isinstance(a, AdoptReplicaSet) for a in actions)
    assert any(isinstance(a, CreateReplicaSet) for a in actions)
