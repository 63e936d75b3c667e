"""Running the plugins for one pod: filter every node, score the ones left, pick one.

Scores are normalized per plugin to 0-100 across the feasible nodes (reversed
for plugins where lower is better), multiplied by the plugin's weight and
summed; ties are broken at random so equal nodes share the load.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
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
    wanted = feasible_nodes_to_find(len(nodes))
    offset = _Rotation.start % len(nodes) if nodes else 0
    looked = 0
    for node in nodes[offset:] + nodes[:offset]:
        looked += 1
        reason = next((r for f in FILTERS if (r := f.filter(state, node)) is not None), None)
        if reason is None:
            feasible.append(node)
            if len(feasible) >= wanted:
                break
        else:
            reasons[reason] += 1
    _Rotation.start = offset + looked
    if not feasible:
        return Decision(None, failure_message(len(nodes), reasons))
    if len(feasible) == 1:
        return Decision(feasible[0].name)
    totals = {n.name: 0.0 for n in feasible}
    for plugin in SCORES:
        raw = {n.name: plugin.score(state, n) for n in feasible}
        low, high = min(raw.values()), max(raw.values())
        for name, value in raw.items():
            normalized = 0.0 if high == low else (value - low) * 100 / (high - low)
            if plugin.reverse:
                normalized = 100 - normalized if high != low else 100.0
            totals[name] += normalized * plugin.weight
    best = max(totals.values())
    return Decision(rng.choice(sorted(n for n, s in totals.items() if s == best)))
