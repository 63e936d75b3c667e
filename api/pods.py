"""Facts about a Pod that several components need, each computed one way.

Whether a pod counts toward its ReplicaSet, is Ready, is available (Ready for
minReadySeconds), which QoS class Kubernetes gives it, how much it requests
and which host ports it holds: the controllers, the scheduler, the kubelet
and the proxy must all agree on these, so they live here and nowhere else.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from . import quantity
from .meta import parse_time

Pod = dict[str, Any]
QOSClass = Literal["Guaranteed", "Burstable", "BestEffort"]

# Only these resources decide the QoS class (Kubernetes' supportedQoSComputeResources).
QOS_RESOURCES = ("cpu", "memory")


def get_condition(pod: Pod, type: str) -> dict[str, Any] | None:
    """The pod's status condition of this type (`Ready`, `PodScheduled`, ...), if any."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type:
            return c
    return None


def is_active(pod: Pod) -> bool:
    """Counts toward replicas: not terminating, not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return not pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


def is_ready(pod: Pod) -> bool:
    """The Ready condition is True."""
    c = get_condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def ready_since(pod: Pod) -> datetime.datetime | None:
    """When the pod last became Ready (None when not Ready or the time is unknown)."""
    if not is_ready(pod):
        return None
    return parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime") or "")


def is_available(pod: Pod, min_ready_seconds: int, now: datetime.datetime) -> bool:
    """Ready for at least minReadySeconds."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def _resource_amount(name: str, value: Any) -> int:
    """cpu in millicores, everything else in whole units (bytes for memory)."""
    return quantity.milli_value(value) if name == "cpu" else quantity.value(value)


def _all_containers(pod: Pod) -> list[dict[str, Any]]:
    """App and init containers (ephemeral containers have no resources)."""
    spec = pod.get("spec") or {}
    return [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]


def qos_class(pod: Pod) -> QOSClass:
    """The pod's QoS class, by Kubernetes' rules (only cpu and memory count).

    BestEffort: no container (init ones included) requests or limits cpu or
    memory. Guaranteed: every container limits both cpu and memory, and its
    requests equal its limits (a request left out defaults to the limit).
    Anything else is Burstable. Zero amounts count as unset.
    """
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for c in _all_containers(pod):
        res = c.get("resources") or {}
        c_limits = {
            n: _resource_amount(n, v)
            for n, v in (res.get("limits") or {}).items()
            if n in QOS_RESOURCES
        }
        c_requests = {
            n: _resource_amount(n, v)
            for n, v in (res.get("requests") or {}).items()
            if n in QOS_RESOURCES
        }
        c_requests = {**c_limits, **c_requests}  # the API defaults requests to limits
        for name, amount in c_requests.items():
            if amount > 0:
                requests[name] = requests.get(name, 0) + amount
        found = set()
        for name, amount in c_limits.items():
            if amount > 0:
                found.add(name)
                limits[name] = limits.get(name, 0) + amount
        if not found >= set(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _sum_requests(containers: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in containers:
        for name, value in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, 0) + _resource_amount(name, value)
    return total


def pod_requests(pod: Pod) -> dict[str, int]:
    """Requests as Kubernetes counts them: the larger of the app containers' sum and
    each init container alone (they run one at a time), plus overhead. cpu in
    millicores, everything else in units (bytes for memory)."""
    spec = pod.get("spec") or {}
    total = _sum_requests(spec.get("containers") or [])
    for init in spec.get("initContainers") or []:
        for name, amount in _sum_requests([init]).items():
            total[name] = max(total.get(name, 0), amount)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + _resource_amount(name, value)
    return total


def host_ports(pod: Pod) -> set[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) for each container port bound on the node."""
    ports = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.add(
                    (p.get("hostIP") or "0.0.0.0", p.get("protocol", "TCP"), int(p["hostPort"]))
                )
    return ports
