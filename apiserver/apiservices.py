"""The APIService objects of the group-versions this apiserver serves itself.

On Kubernetes the aggregator's autoregister controller keeps one APIService
per built-in group-version (`v1.`, `v1.apps`, ...), each Local (no Service
behind it) and always Available, and metrics-server adds
`v1beta1.metrics.k8s.io`. skiff serves metrics.k8s.io itself, so it is
Local here as well. `kubectl get apiservices` reads these objects.
"""

from __future__ import annotations

from typing import Any

# kube-apiserver's apiVersionPriorities (groupPriorityMinimum, versionPriority).
PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("autoscaling", "v1"): (17500, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("batch", "v1"): (17400, 15),
    ("certificates.k8s.io", "v1"): (17300, 15),
    ("networking.k8s.io", "v1"): (17200, 15),
    ("policy", "v1"): (17100, 15),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("storage.k8s.io", "v1"): (16800, 15),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("node.k8s.io", "v1"): (16300, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
    ("apiregistration.k8s.io", "v1"): (18000, 1),  # the aggregator's own
    ("metrics.k8s.io", "v1beta1"): (100, 100),  # as metrics-server registers it
}
# What Kubernetes gives group-versions it has no entry for (custom resources' groups).
DEFAULT_PRIORITY = (1000, 100)

AVAILABLE = {
    "type": "Available",
    "status": "True",
    "reason": "Local",
    "message": "Local APIServices are always available",
}


def name_of(group: str, version: str) -> str:
    """`v1.` for the core group, `v1.apps`: Kubernetes' APIService names."""
    return f"{version}.{group}"


def desired(groups: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """One Local APIService per served (group, versions) entry."""
    out = []
    for group, versions in groups:
        for version in versions:
            group_priority, version_priority = PRIORITIES.get((group, version), DEFAULT_PRIORITY)
            spec: dict[str, Any] = {
                "version": version,
                "groupPriorityMinimum": group_priority,
                "versionPriority": version_priority,
            }
            if group:
                spec = {"group": group, **spec}
            out.append(
                {
                    "apiVersion": "apiregistration.k8s.io/v1",
                    "kind": "APIService",
                    "metadata": {
                        "name": name_of(group, version),
                        "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"},
                    },
                    "spec": spec,
                }
            )
    return out


def with_available(status: dict[str, Any] | None, now: str) -> dict[str, Any] | None:
    """The status with Available=True (Local), or None when it already says so."""
    conditions = list((status or {}).get("conditions") or [])
    current = next((c for c in conditions if c.get("type") == "Available"), None)
    if current and all(current.get(k) == v for k, v in AVAILABLE.items()):
        return None
    conditions = [c for c in conditions if c.get("type") != "Available"]
    conditions.append({**AVAILABLE, "lastTransitionTime": now})
    return {**(status or {}), "conditions": conditions}
