"""Rolling update arithmetic and the Deployment controller's steps."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controllers import rollout
from controllers.deployment import (
    HASH_LABEL,
    REVISION,
    CreateReplicaSet,
    ScaleReplicaSet,
    SetRevision,
    decide,
    new_replicaset,
)

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)


def deployment(
    replicas: int = 10,
    surge: Any = "25%",
    unavailable: Any = "25%",
    image: str = "nginx:1",
    strategy: str = "RollingUpdate",
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            "strategy": {"type": strategy},
        },
    }
    if strategy == "RollingUpdate":
        d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return d


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailable rounds down
        (4, "25%", "25%", (1, 1)),
        (1, "25%", "25%", (1, 0)),
        (3, "50%", "50%", (2, 1)),
        (10, 0, 0, (0, 1)),  # both zero: one may be unavailable
        (10, 2, "10%", (2, 1)),
        (5, "0%", "100%", (0, 5)),
    ],
)
def test_surge_and_unavailable(
    replicas: int, surge: Any, unavailable: Any, expected: tuple[int, int]
) -> None:
    assert rollout.surge_and_unavailable(deployment(replicas, surge, unavailable)) == expected


def rs_of(d: dict[str, Any], name: str, replicas: int, available: int, rev: int) -> dict:
    rs = new_replicaset(d, rev, replicas)
    rs["metadata"]["name"] = name
    rs["metadata"]["creationTimestamp"] = f"2026-11-24T1{rev}:00:00Z"
    rs["status"] = {
        "replicas": replicas,
        "availableReplicas": available,
        "readyReplicas": available,
    }
    return rs


def test_new_deployment_creates_full_size_replicaset() -> None:
    actions = decide(deployment(5), [], NOW)
    create = next(a for a in actions if isinstance(a, CreateReplicaSet))
    rs = create.replicaset
    assert rs["spec"]["replicas"] == 5
    hash_ = rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{hash_}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: hash_}
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert SetRevision("1") in actions


def test_rolling_update_steps_stay_within_bounds() -> None:
    """Simulate a whole rollout: every step respects surge and unavailability."""
    old_d = deployment(10, "25%", "25%", image="nginx:1")
    new_d = deployment(10, "25%", "25%", image="nginx:2")
    rsets = [rs_of(old_d, "web-old", 10, 10, 1)]
    surge, unavailable = rollout.surge_and_unavailable(new_d)
    for _ in range(40):
        actions = [
            a
            for a in decide(new_d, rsets, NOW)
            if isinstance(a, CreateReplicaSet | ScaleReplicaSet)
        ]
        if not actions:
            break
        for a in actions:
            if isinstance(a, CreateReplicaSet):
                rs = a.replicaset
                rs["metadata"]["creationTimestamp"] = "2026-11-24T19:00:00Z"
                rs["status"] = {"replicas": rs["spec"]["replicas"], "availableReplicas": 0}
                rsets.append(rs)
            else:
                rs = next(r for r in rsets if r["metadata"]["name"] == a.name)
                rs["spec"]["replicas"] = a.replicas
                rs["status"]["replicas"] = a.replicas
                rs["status"]["availableReplicas"] = min(
                    rs["status"]["availableReplicas"], a.replicas
                )
        total = sum(r["spec"]["replicas"] for r in rsets)
        assert total <= 10 + surge
        # Pods become available (a hollow node), then check availability never dipped.
        available_before = sum(r["status"]["availableReplicas"] for r in rsets)
        assert available_before >= 10 - unavailable
        for r in rsets:
            r["status"]["availableReplicas"] = r["spec"]["replicas"]
    sizes = {r["metadata"]["name"]: r["spec"]["replicas"] for r in rsets}
    assert sizes["web-old"] == 0
    assert sum(sizes.values()) == 10


def test_recreate_scales_old_to_zero_first() -> None:
    old_d = deployment(3, strategy="Recreate", image="nginx:1")
    new_d = deployment(3, strategy="Recreate", image="nginx:2")
    old = rs_of(old_d, "web-old", 3, 3, 1)
    created = next(a for a in decide(new_d, [old], NOW) if isinstance(a, CreateReplicaSet))
    assert created.replicaset["spec"]["replicas"] == 0
    new = created.replicaset
    new["status"] = {"replicas": 0}
    assert ScaleReplicaSet("web-old", 0) in decide(new_d, [old, new], NOW)
    old["spec"]["replicas"] = 0
    # Old pods still there: wait.
    assert not [a for a in decide(new_d, [old, new], NOW) if isinstance(a, ScaleReplicaSet)]
    old["status"]["replicas"] = 0
    scale = [a for a in decide(new_d, [old, new], NOW) if isinstance(a, ScaleReplicaSet)]
    assert [(a.name, a.replicas) for a in scale] == [(new["metadata"]["name"], 3)]


def test_proportional_scaling_mid_rollout() -> None:
    d = deployment(10, 3, 2)
    old = {"metadata": {"name": "a"}, "spec": {"replicas": 8}}
    new = {"metadata": {"name": "b"}, "spec": {"replicas": 5}}
    d["spec"]["replicas"] = 20  # allowed = 20 + surge(3) = 23; current 13; +10
    sizes = rollout.proportional(rollout.plan(d), [old, new])
    assert sum(sizes.values()) == 23
    assert sizes["a"] > sizes["b"]
