"""Whether a pod tolerates a node's taint, as Kubernetes matches them.

The scheduler asks it before placing a pod (NoSchedule, PreferNoSchedule),
the node-lifecycle controller before evicting one (NoExecute, with
tolerationSeconds), and the kubelet before admitting one: one definition.
"""

from __future__ import annotations

from typing import Any


def toleration_matches(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """One toleration against one taint.

    An empty effect tolerates every effect; `Exists` with an empty key
    tolerates every taint; `Exists` with a key tolerates any value of that
    key; `Equal` (the default operator) needs the same key and value.
    """
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration.get("key") == taint.get("key")
    return toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (
        taint.get("value") or ""
    )


def tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    """Some toleration in the list matches the taint."""
    return any(toleration_matches(t, taint) for t in tolerations)


def matching_toleration(pod: dict[str, Any], taint: dict[str, Any]) -> dict[str, Any] | None:
    """The first of the pod's tolerations that matches `taint` (its tolerationSeconds
    decides how long the pod may stay under a NoExecute taint), or None."""
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if toleration_matches(t, taint):
            return t
    return None
