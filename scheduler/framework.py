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


@dataclass
class Decision:
    node: str | None  # None: unschedulable
    message: str = ""  # why not, in kube-scheduler's words
    # Why, for `skiff explain pod/x`: per node looked at, each filter's verdict ("" =
    # passed), in the order they ran; and for the nodes scored, per score plugin its
    # weight and the raw and normalized (0-100) score of each node, in `scored` order.
    filters: dict[str, list[tuple[str, str]]] = field(default_factory=dict, compare=False)
    scored: list[str] = field(default_factory=list, compare=False)
    table: list[tuple[str, int, list[float], list[float]]] = field(
        default_factory=list, compare=False
    )
    totals: list[float] = field(default_factory=list, compare=False)
    nodes_total: int = field(default=0, compare=False)  # nodes in the cluster
    wanted: int = field(default=0, compare=False)  # feasible nodes to find, then stop

    @property
    def scores(self) -> dict[str, dict[str, tuple[float, float, float]]]:
        """Per scored node, per plugin: (raw, normalized, weighted)."""
        return self.scores_of(self.scored)

    def scores_of(self, names: list[str]) -> dict[str, dict[str, tuple[float, float, float]]]:
        where = {n: i for i, n in enumerate(self.scored)}
        return {
            n: {p: (raw[where[n]], z[where[n]], z[where[n]] * w) for p, w, raw, z in self.table}
            for n in names
            if n in where
        }

    def sampling(self) -> str:
        """Which nodes were looked at, as a person reads it."""
        looked, total = len(self.filters), self.nodes_total
        passed = sum(1 for v in self.filters.values() if not v[-1][1])
        if looked == 0:  # no nodes, or a PreFilter ruled them all out at once
            return f"no node of {total} was looked at one by one"
        if looked < total:
            text = (
                f"looked at {looked} of {total} nodes: stopped once {passed} fit "
                f"(percentageOfNodesToScore wants {self.wanted} at {total} nodes); "
                f"the other {total - looked} were not filtered or scored"
            )
        else:
            text = f"looked at all {total} nodes; {passed} passed the filters"
        if passed == 1:
            text += "; one node fit, so none was scored"
        return text

    def explanation(self, limit: int = 20) -> dict[str, Any]:
        """The verdicts and scores as the trace keeps them, for at most `limit` nodes:
        the chosen one, the best of the rest, then nodes the filters ruled out."""
        order = sorted(range(len(self.scored)), key=lambda i: -self.totals[i])
        best = [self.scored[i] for i in order]
        if self.node in best:
            best.remove(self.node)
            best.insert(0, self.node)
        failed = [n for n, v in self.filters.items() if v[-1][1]]
        shown = best[: limit // 2] + failed[: limit - min(len(best), limit // 2)]
        shown += best[limit // 2 : limit - len(shown) + limit // 2]
        return {
            "node": self.node,
            "message": self.message,
            "nodesTotal": self.nodes_total,
            "nodesLookedAt": len(self.filters),
            "nodesPassed": len(self.filters) - len(failed),
            "sampling": self.sampling(),
            "filters": {n: [[p, r] for p, r in self.filters[n]] for n in shown},
            "scores": {
                n: {p: {"raw": round(r, 2), "normalized": round(z, 1), "weighted": round(w, 1)}
                    for p, (r, z, w) in plugins.items()}
                for n, plugins in self.scores_of(shown).items()
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
    """Filter nodes in turn until enough fit, score those, pick the best.

    Per pod, a filter the pod asks nothing of is skipped (kube-scheduler's PreFilter
    Skip) and a score that cannot differ between nodes is not computed per node, so a
    plain pod costs a few comparisons per node on the cached NodeInfos.
    """
    rng = rng or random.Random()
    state = CycleState(pod, nodes)
    if volumes is not None:
        state.data["volumes"] = volumes
    total = len(nodes)
    if nodes:
        # A PreFilter that fails rules out every node at once, with one reason.
        for plugin in PRE_FILTERS:
            reason = plugin.pre_filter(state)
            if reason is not None:
                return Decision(
                    None, f"0/{total} nodes are available: {reason}.", nodes_total=total
                )
    active = [(i, p.name, p.filter) for i, p in enumerate(FILTERS) if not p.skip(state)]
    all_pass = [(p.name, "") for p in FILTERS]  # one shared verdict list for nodes that fit
    feasible: list[NodeInfo] = []
    reasons: Counter[str] = Counter()
    verdicts: dict[str, list[tuple[str, str]]] = {}
    wanted = feasible_nodes_to_find(total)
    offset = _Rotation.start % total if nodes else 0
    looked = 0
    for node in nodes[offset:] + nodes[:offset]:
        looked += 1
        for i, plugin, check in active:  # the first filter that fails rules the node out
            reason = check(state, node)
            if reason is not None:
                verdicts[node.name] = [*all_pass[:i], (plugin, reason)]
                reasons[reason] += 1
                break
        else:
            verdicts[node.name] = all_pass
            feasible.append(node)
            if len(feasible) >= wanted:
                break
    _Rotation.start = offset + looked
    if not feasible:
        return Decision(
            None, failure_message(total, reasons), verdicts, nodes_total=total, wanted=wanted
        )
    names = [n.name for n in feasible]
    if len(feasible) == 1:
        return Decision(names[0], filters=verdicts, nodes_total=total, wanted=wanted)
    totals = [0.0] * len(feasible)
    same = 0.0  # what the plugins that score every node alike add to every total
    table: list[tuple[str, int, list[float], list[float]]] = []
    for plugin in SCORES:
        raw = plugin.scores(state, feasible)
        low, high = min(raw), max(raw)
        weight = plugin.weight
        if high == low:  # the same for every node: it cannot change the choice
            value = 100.0 if plugin.reverse else 0.0
            normalized = [value] * len(raw)
            same += value * weight
        else:
            span = high - low
            normalized = [(v - low) * 100 / span for v in raw]
            if plugin.reverse:
                normalized = [100 - z for z in normalized]
            totals = [t + z * weight for t, z in zip(totals, normalized, strict=True)]
        table.append((plugin.name, weight, raw, normalized))
    if same:
        totals = [t + same for t in totals]
    best = max(totals)
    chosen = rng.choice([n for n, t in zip(names, totals, strict=True) if t == best])
    return Decision(
        chosen,
        filters=verdicts,
        scored=names,
        table=table,
        totals=totals,
        nodes_total=total,
        wanted=wanted,
    )
