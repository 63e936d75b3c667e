"""The fields each kind can be selected by (`?fieldSelector=`), as Kubernetes lists them.

Every kind supports metadata.name and metadata.namespace; a few add their own
(`spec.nodeName` on pods is what every kubelet watches by).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .resources import ResourceInfo


def _get(obj: dict[str, Any], dotted: str) -> str:
    node: Any = obj
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _pick(*paths: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    def pick(obj: dict[str, Any]) -> dict[str, str]:
        return {p: _get(obj, p) for p in paths}

    return pick


def _pod(obj: dict[str, Any]) -> dict[str, str]:
    fields = _pick(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    )(obj)
    fields["spec.hostNetwork"] = _get(obj, "spec.hostNetwork") or "false"
    return fields


def _event(obj: dict[str, Any]) -> dict[str, str]:
    fields = _pick(
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    )(obj)
    fields["source"] = _get(obj, "source.component") or _get(obj, "reportingComponent")
    return fields


def _new_event(obj: dict[str, Any]) -> dict[str, str]:
    fields = _pick(
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "reason",
        "reportingController",
        "type",
    )(obj)
    return fields


_BY_KIND: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, str]]] = {
    ("", "Pod"): _pod,
    ("", "Event"): _event,
    ("events.k8s.io", "Event"): _new_event,
    ("", "Node"): _pick("spec.unschedulable"),
    ("", "Namespace"): _pick("status.phase"),
    ("", "Secret"): _pick("type"),
    ("", "Service"): _pick("spec.clusterIP", "spec.type"),
    ("apps", "ReplicaSet"): _pick("status.replicas"),
    ("discovery.k8s.io", "EndpointSlice"): _pick("addressType"),
}


def field_labels(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    fields = {"metadata.name": str(meta.get("name", ""))}
    if info.namespaced:
        fields["metadata.namespace"] = str(meta.get("namespace", ""))
    extra = _BY_KIND.get((info.group, info.kind))
    if extra is not None:
        fields.update(extra(obj))
    return fields
