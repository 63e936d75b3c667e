"""NodeUnschedulable, NodeName and NodeAffinity (nodeSelector and node affinity)."""

from __future__ import annotations

from typing import Any

from api.nodeaffinity import pod_fits_node, term_matches
from scheduler.cache import NodeInfo

from . import CycleState


def _preferred(state: CycleState) -> list[dict[str, Any]]:
    affinity = ((state.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    return list(affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or [])


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def skip(self, state: CycleState) -> bool:
        return False

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        if not node.unschedulable:
            return None
        for t in (state.pod.get("spec") or {}).get("tolerations") or []:
            if t.get("key") == "node.kubernetes.io/unschedulable" and t.get("operator") == "Exists":
                return None
        return "node(s) were unschedulable"


class NodeName:
    name = "NodeName"

    def skip(self, state: CycleState) -> bool:
        return not (state.pod.get("spec") or {}).get("nodeName")

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        wanted = (state.pod.get("spec") or {}).get("nodeName")
        if wanted and wanted != node.name:
            return "node(s) didn't match the requested node name"
        return None


class NodeAffinity:
    name = "NodeAffinity"
    weight = 2
    reverse = False

    def skip(self, state: CycleState) -> bool:
        spec = state.pod.get("spec") or {}
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        return not spec.get("nodeSelector") and not affinity.get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        if not pod_fits_node(state.pod, node.node):
            return "node(s) didn't match Pod's node affinity/selector"
        return None

    def scores(self, state: CycleState, nodes: list[NodeInfo]) -> list[float]:
        if not _preferred(state):
            return [0.0] * len(nodes)
        return [self.score(state, n) for n in nodes]

    def score(self, state: CycleState, node: NodeInfo) -> float:
        preferred = _preferred(state)
        return float(
            sum(
                int(p.get("weight", 0))
                for p in preferred
                if term_matches(p.get("preference") or {}, node.node)
            )
        )
