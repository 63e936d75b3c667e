"""Whether a pod may run on a node: its nodeSelector and required node affinity.

The scheduler filters nodes with it; the kubelet checks it again when it
admits a pod bound to its node (a pod whose nodeName was set by hand skips
the scheduler). Preferred affinity terms are scored with `term_matches`.
"""

from __future__ import annotations

from typing import Any


def match_expression(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    """One NodeSelectorRequirement (In, NotIn, Exists, DoesNotExist, Gt, Lt) on labels."""
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


def term_matches(term: dict[str, Any], node: dict[str, Any]) -> bool:
    """A NodeSelectorTerm: all its matchExpressions (on labels) and matchFields
    (on `metadata.name`) hold for the Node."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing, as in Kubernetes
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    node_fields = {"metadata.name": meta.get("name", "")}
    return all(match_expression(e, labels) for e in exprs) and all(
        match_expression(f, node_fields) for f in fields
    )


def pod_fits_node(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """Every nodeSelector label is on the node, and, when the pod has required node
    affinity, at least one of its nodeSelectorTerms matches (terms are ORed)."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    return not terms or any(term_matches(t, node) for t in terms)
