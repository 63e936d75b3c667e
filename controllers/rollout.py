"""The arithmetic of rolling updates, as Kubernetes' deployment controller does it.

Kept apart from the controller because it is what people come to study: how
maxSurge and maxUnavailable turn into "scale the new ReplicaSet up by 2" and
"scale the old one down by 1", step by step, never dropping below
`replicas - maxUnavailable` available pods nor going above
`replicas + maxSurge` pods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

RS = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """A Deployment's rollout parameters, worked out once per decision.

    Everything below reads these numbers instead of the Deployment, so a reader
    following one change sees maxSurge and maxUnavailable resolved in one place.
    """

    replicas: int
    strategy: str  # RollingUpdate | Recreate
    max_surge: int  # pods above `replicas` allowed during a rollout
    max_unavailable: int  # pods below `replicas` allowed to be unavailable

    @property
    def max_total(self) -> int:
        return self.replicas + self.max_surge

    @property
    def min_available(self) -> int:
        return self.replicas - self.max_unavailable


def plan(deployment: dict[str, Any]) -> Plan:
    spec = deployment.get("spec") or {}
    surge, unavailable = surge_and_unavailable(deployment)
    return Plan(
        replicas=int(spec.get("replicas", 1)),
        strategy=(spec.get("strategy") or {}).get("type", "RollingUpdate"),
        max_surge=surge,
        max_unavailable=unavailable,
    )


def resolve(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An int-or-percent against `total`: surge rounds up, unavailable rounds down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        share = int(text[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(text)


def surge_and_unavailable(deployment: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both 0 is not allowed, so unavailable becomes 1."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def spec_replicas(rs: RS) -> int:
    return int((rs.get("spec") or {}).get("replicas", 0))


def available(rs: RS) -> int:
    return int((rs.get("status") or {}).get("availableReplicas", 0))


def new_rs_target(p: Plan, new: RS, all_rs: list[RS]) -> int:
    """How big the new ReplicaSet may be now (NewRSNewReplicas)."""
    replicas = p.replicas
    current = spec_replicas(new)
    if current >= replicas:
        return replicas
    total = sum(spec_replicas(rs) for rs in all_rs)
    room = p.max_total - total
    if room <= 0:
        return current
    return current + min(room, replicas - current)


def old_rs_scale_down(p: Plan, new: RS | None, old: list[RS]) -> dict[str, int]:
    """New sizes for old ReplicaSets (only those that shrink), oldest first.

    Unhealthy old pods go first (they count against nothing), then available
    ones, as far as `replicas - maxUnavailable` available pods allow.
    """
    min_available = p.min_available
    all_rs = [*old, *([new] if new else [])]
    total = sum(spec_replicas(rs) for rs in all_rs)
    new_unavailable = (spec_replicas(new) - available(new)) if new else 0
    budget = total - min_available - new_unavailable
    if budget <= 0 or not any(spec_replicas(rs) for rs in old):
        return {}
    sizes = {rs["metadata"]["name"]: spec_replicas(rs) for rs in old}
    # 1. Unhealthy first: old pods that are not available cost no availability.
    for rs in old:
        name = rs["metadata"]["name"]
        unhealthy = sizes[name] - available(rs)
        cut = min(budget, max(unhealthy, 0))
        sizes[name] -= cut
        budget -= cut
        if budget <= 0:
            break
    # 2. Then available ones, as long as enough stay available overall.
    available_now = sum(
        min(available(rs), sizes.get(rs["metadata"]["name"], spec_replicas(rs))) for rs in old
    ) + (available(new) if new else 0)
    spare = available_now - min_available
    for rs in old:
        if spare <= 0:
            break
        name = rs["metadata"]["name"]
        cut = min(sizes[name], spare)
        sizes[name] -= cut
        spare -= cut
    return {
        n: s
        for n, s in sizes.items()
        if s != spec_replicas(next(r for r in old if r["metadata"]["name"] == n))
    }


def proportional(p: Plan, active: list[RS]) -> dict[str, int]:
    """Scale several active ReplicaSets together when replicas change mid-rollout.

    Each gets a share of the change proportional to its size; the rounding
    leftover goes to the largest (Kubernetes' proportional scaling).
    """
    allowed = p.max_total
    current = sum(spec_replicas(rs) for rs in active)
    delta = allowed - current
    if delta == 0 or current == 0:
        return {}
    ordered = sorted(active, key=lambda rs: (-spec_replicas(rs), rs["metadata"]["name"]))
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        share = (
            int(spec_replicas(rs) * delta / current)
            if delta > 0
            else -int(spec_replicas(rs) * -delta / current)
        )
        sizes[rs["metadata"]["name"]] = spec_replicas(rs) + share
        added += share
    leftover = delta - added
    if ordered and leftover:
        first = ordered[0]["metadata"]["name"]
        sizes[first] += leftover
    return {n: max(s, 0) for n, s in sizes.items()}
