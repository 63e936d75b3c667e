"""Running the plugins for one pod: filter every node, score the ones left, pick one.

Scores are normalized per plugin to 0-100 across the feasible nodes (reversed
for plugins where lower is better), multiplied by the plugin's weight and
summed; ties are broken at random so equal nodes share the load.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .cache import NodeInfo
from .plugins import CycleState
from .plugins.interpod import InterPodAffinity
from .plugins.node import NodeAffinity, NodeName, NodeUnschedulable
from .plugins.resources import BalancedAllocation, NodePorts, NodeResourcesFit
from .plugins.spread import PodTopologySpread
from .plugins.taints import TaintToleration
from .plugins.volumebinding import VolumeBinding, Volumes

FILTERS = [
    NodeUnschedulable(),
    NodeName(),
    TaintToleration(),
    NodeAffinity(),
    NodePorts(),
    NodeResourcesFit(),
    InterPodAffinity(),
    PodTopologySpread(),
    VolumeBinding(),
]
PRE_FILTERS = [VolumeBinding()]
SCORES = [
    NodeResourcesFit(),
    BalancedAllocation(),
    NodeAffinity(),
    TaintToleration(),
    PodTopologySpread(),
    InterPodAffinity(),
]


@dataclass(frozen=True)
class Decision:
    node: str | None  # None: unschedulable
    message: str = ""  # why not, in kube-scheduler's words
    # Why, for `skiff explain pod/x`: per node, each filter's verdict ("" = passed)
    # and each score plugin's raw, normalized (0-100) and weighted score.
    filters: dict[str, list[tuple[str, str]]] = field(default_factory=dict, compare=False)
    scores: dict[str, dict[str, tuple[float, float, float]]] = field(
        default_factory=dict, compare=False
    )

    def explanation(self, limit: int = 20) -> dict[str, Any]:
        """The verdicts and scores as the trace keeps them (at most `limit` nodes)."""
        nodes = list(self.filters)[:limit]
        return {
            "node": self.node,
            "message": self.message,
            "nodesLookedAt": len(self.filters),
            "filters": {n: [[p, r] for p, r in self.filters[n]] for n in nodes},
            "scores": {
                n: {p: {"raw": r, "normalized": round(z, 1), "weighted": round(w, 1)}
                    for p, (r, z, w) in self.scores[n].items()}
                for n in nodes if n in self.scores
            },
        }  # fmt: skip


def failure_message(total: int, reasons: Counter[str]) -> str:
    """`0/3 nodes are available: 1 node(s) had untolerated taint {...}, 2 Insufficient memory.`"""
    if total == 0:
        return "no nodes available to schedule pods"  # kube-scheduler's ErrNoNodesAvailable
    # Sorted as whole strings ("1 node(s)..." before "2 Insufficient..."), as Kubernetes does.
    parts = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
    if not parts:
        return f"0/{total} nodes are available."
    return f"0/{total} nodes are available: {parts}."


MIN_FEASIBLE_NODES = 100


def feasible_nodes_to_find(total: int) -> int:
    """kube-scheduler's percentageOfNodesToScore: in a large cluster, stop looking once
    enough nodes fit (50% of nodes, less 1% per 125 nodes, at least 5% and 100 nodes)."""
    if total <= MIN_FEASIBLE_NODES:
        return total
    percentage = max(50 - total // 125, 5)
    return max(total * percentage // 100, MIN_FEASIBLE_NODES)


class _Rotation:
    """Where the next search starts, so that every node gets looked at in turn."""

    start = 0


def schedule(
    pod: dict[str, Any],
    nodes: list[NodeInfo],
    rng: random.Random | None = None,
    volumes: Volumes | None = None,
) -> Decision:
    rng = rng or random.Random()
    state = CycleState(pod, nodes)
    if volumes is not None:
        state.data["volumes"] = volumes
    if nodes:
        # A PreFilter that fails rules out every node at once, with one reason.
        for plugin in PRE_FILTERS:
            reason = plugin.pre_filter(state)
            if reason is not None:
                return Decision(None, f"0/{len(nodes)} nodes are available: {reason}.")
    feasible: list[NodeInfo] = []
    reasons: Counter[str] = Counter()
    verdicts: dict[str, list[tuple[str, str]]] = {}
    wanted = feasible_nodes_to_find(len(nodes))
    offset = _Rotation.start % len(nodes) if nodes else 0
    looked = 0
    for node in nodes[offset:] + nodes[:offset]:
        looked += 1
        ran: list[tuple[str, str]] = []
        reason = None
        for plugin in FILTERS:  # the first filter that fails rules the node out
            reason = plugin.filter(state, node)
            ran.append((plugin.name, reason or ""))
            if reason is not None:
                break
        verdicts[node.name] = ran
        if reason is None:
            feasible.append(node)
            if len(feasible) >= wanted:
                break
        else:
            reasons[reason] += 1
    _Rotation.start = offset + looked
    if not feasible:
        return Decision(None, failure_message(len(nodes), reasons), verdicts)
    if len(feasible) == 1:
        return Decision(feasible[0].name, filters=verdicts)
    totals = {n.name: 0.0 for n in feasible}
    scores: dict[str, dict[str, tuple[float, float, float]]] = {n.name: {} for n in feasible}
    for plugin in SCORES:
        raw = {n.name: plugin.score(state, n) for n in feasible}
        low, high = min(raw.values()), max(raw.values())
        for name, value in raw.items():
            normalized = 0.0 if high == low else (value - low) * 100 / (high - low)
            if plugin.reverse:
                normalized = 100 - normalized if high != low else 100.0
            totals[name] += normalized * plugin.weight
            scores[name][plugin.name] = (value, normalized, normalized * plugin.weight)
    best = max(totals.values())
    chosen = rng.choice(sorted(n for n, s in totals.items() if s == best))
    return Decision(chosen, filters=verdicts, scores=scores)
