"""PodTopologySpread: spread matching pods evenly over the domains of a node label.

With `whenUnsatisfiable: DoNotSchedule` a node is refused when placing the
pod there would make its domain exceed the least-populated domain by more
than `maxSkew`; with `ScheduleAnyway` fuller domains only score lower.
"""

from __future__ import annotations

from typing import Any

from api.selectors import selector_from_dict
from scheduler.cache import NodeInfo

from . import CycleState


def _counts(constraint: dict[str, Any], state: CycleState) -> dict[str, int]:
    """Matching pods per domain, over the nodes that have the topology label."""
    key = constraint.get("topologyKey", "")
    selector = selector_from_dict(constraint.get("labelSelector"))
    namespace = state.pod["metadata"].get("namespace")
    counts: dict[str, int] = {}
    for node in state.all_nodes:
        domain = node.labels.get(key)
        if domain is None:
            continue
        counts.setdefault(domain, 0)
        counts[domain] += sum(
            1
            for p in node.pods.values()
            if p["metadata"].get("namespace") == namespace
            and selector.matches(p["metadata"].get("labels") or {})
        )
    return counts


def _cached_counts(constraint: dict[str, Any], state: CycleState) -> dict[str, int]:
    key = f"spread:{id(constraint)}"
    if key not in state.data:
        state.data[key] = _counts(constraint, state)
    return state.data[key]


def _constraints(state: CycleState, mode: str) -> list[dict[str, Any]]:
    return [
        c
        for c in (state.pod.get("spec") or {}).get("topologySpreadConstraints") or []
        if c.get("whenUnsatisfiable", "DoNotSchedule") == mode
    ]


class PodTopologySpread:
    name = "PodTopologySpread"
    weight = 2
    reverse = True  # fewer matching pods in the domain is better

    def skip(self, state: CycleState) -> bool:
        return not _constraints(state, "DoNotSchedule")

    def scores(self, state: CycleState, nodes: list[NodeInfo]) -> list[float]:
        if not _constraints(state, "ScheduleAnyway"):
            return [0.0] * len(nodes)
        return [self.score(state, n) for n in nodes]

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        for c in _constraints(state, "DoNotSchedule"):
            counts = _cached_counts(c, state)
            domain = node.labels.get(c.get("topologyKey", ""))
            if domain is None:
                return (
                    "node(s) didn't match pod topology spread constraints (missing required label)"
                )
            least = min(counts.values()) if counts else 0
            if counts.get(domain, 0) + 1 - least > int(c.get("maxSkew", 1)):
                return "node(s) didn't match pod topology spread constraints"
        return None

    def score(self, state: CycleState, node: NodeInfo) -> float:
        total = 0.0
        for c in _constraints(state, "ScheduleAnyway"):
            counts = _cached_counts(c, state)
            total += counts.get(node.labels.get(c.get("topologyKey", ""), ""), 0)
        return total
