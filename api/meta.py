"""Small helpers on object metadata that every component needs."""

from __future__ import annotations

import datetime
from typing import Any


def now_rfc3339() -> str:
    """Kubernetes' metav1.Time: UTC, seconds precision."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """Kubernetes' metav1.MicroTime (leases, events.k8s.io eventTime)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime.datetime | None:
    """A metav1.Time or MicroTime, or None when absent or malformed."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def namespaced_key(obj: dict[str, Any]) -> str:
    """The informer key: "namespace/name", or "name" for cluster-scoped objects."""
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with controller: true, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def is_owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner.get("metadata", {}).get("uid")
    return any(r.get("uid") == uid for r in obj.get("metadata", {}).get("ownerReferences") or [])


def owner_reference(
    owner: dict[str, Any], *, controller: bool = True, block_owner_deletion: bool = True
) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": block_owner_deletion,
    }


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})
