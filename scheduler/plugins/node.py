"""NodeUnschedulable, NodeName and NodeAffinity (nodeSelector and node affinity)."""

from __future__ import annotations

from api.nodeaffinity import pod_fits_node, term_matches
from scheduler.cache import NodeInfo

from . import CycleState


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        if not (node.node.get("spec") or {}).get("unschedulable"):
            return None
        for t in (state.pod.get("spec") or {}).get("tolerations") or []:
            if t.get("key") == "node.kubernetes.io/unschedulable" and t.get("operator") == "Exists":
                return None
        return "node(s) were unschedulable"


class NodeName:
    name = "NodeName"

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        wanted = (state.pod.get("spec") or {}).get("nodeName")
        if wanted and wanted != node.name:
            return "node(s) didn't match the requested node name"
        return None


class NodeAffinity:
    name = "NodeAffinity"
    weight = 2
    reverse = False

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        if not pod_fits_node(state.pod, node.node):
            return "node(s) didn't match Pod's node affinity/selector"
        return None

    def score(self, state: CycleState, node: NodeInfo) -> float:
        preferred = (
            ((state.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
        ).get("preferredDuringSchedulingIgnoredDuringExecution") or []
        return float(
            sum(
                int(p.get("weight", 0))
                for p in preferred
                if term_matches(p.get("preference") or {}, node.node)
            )
        )
