"""NodeUnschedulable, NodeName and NodeAffinity (nodeSelector and node affinity)."""

from __future__ import annotations

from typing import Any

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


def match_expression(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op = expr.get("key", ""), expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    have = labels.get(key)
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and values:
        try:
            a, b = int(have), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def term_matches(term: dict[str, Any], node: NodeInfo) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing, as in Kubernetes
    node_fields = {"metadata.name": node.name}
    return all(match_expression(e, node.labels) for e in exprs) and all(
        match_expression(f, node_fields) for f in fields
    )


class NodeAffinity:
    name = "NodeAffinity"
    weight = 2
    reverse = False

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        spec = state.pod.get("spec") or {}
        labels = node.labels
        for key, value in (spec.get("nodeSelector") or {}).items():
            if labels.get(key) != value:
                return "node(s) didn't match Pod's node affinity/selector"
        required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or {}
        terms = required.get("nodeSelectorTerms") or []
        if terms and not any(term_matches(t, node) for t in terms):
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
                if term_matches(p.get("preference") or {}, node)
            )
        )
