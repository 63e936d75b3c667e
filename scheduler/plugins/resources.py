"""NodeResourcesFit (filter), least allocated and balanced allocation (scores), NodePorts."""

from __future__ import annotations

from api.pods import host_ports, pod_requests
from scheduler.cache import DEFAULT_CPU_MILLI, DEFAULT_MEMORY, NodeInfo

from . import CycleState


def _requests(state: CycleState) -> dict[str, int]:
    """The pod's requests, computed once per scheduling cycle."""
    if "requests" not in state.data:
        state.data["requests"] = pod_requests(state.pod)
    return state.data["requests"]


MESSAGES = {
    "cpu": "Insufficient cpu",
    "memory": "Insufficient memory",
    "ephemeral-storage": "Insufficient ephemeral-storage",
}


class NodeResourcesFit:
    name = "NodeResourcesFit"
    weight = 1
    reverse = False

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        requests = _requests(state)
        capacity = node.allocatable
        if "pods" in capacity and len(node.pods) + 1 > capacity["pods"]:
            return "Too many pods"
        for name, amount in requests.items():
            if amount <= 0:
                continue
            have = capacity.get(name)
            if have is None:
                if name in MESSAGES:
                    return MESSAGES[name]
                continue
            if node.requested.get(name, 0) + amount > have:
                return MESSAGES.get(name, f"Insufficient {name}")
        return None

    def score(self, state: CycleState, node: NodeInfo) -> float:
        """Least allocated: the share of cpu and memory left after this pod, 0-100."""
        fractions = _fractions(state, node)
        if not fractions:
            return 0.0
        return sum((1 - f) * 100 for f in fractions) / len(fractions)


def _fractions(state: CycleState, node: NodeInfo) -> list[float]:
    requests = _requests(state)
    capacity = node.allocatable
    out = []
    for name, default in (("cpu", DEFAULT_CPU_MILLI), ("memory", DEFAULT_MEMORY)):
        have = capacity.get(name)
        if not have:
            continue
        used = node.nonzero.get(name, 0) + (requests.get(name) or default)
        out.append(min(used / have, 1.0))
    return out


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"
    weight = 1
    reverse = False

    def score(self, state: CycleState, node: NodeInfo) -> float:
        """100 when cpu and memory would be used in equal shares, less the more they differ."""
        fractions = _fractions(state, node)
        if len(fractions) < 2:
            return 0.0
        mean = sum(fractions) / len(fractions)
        std = (sum((f - mean) ** 2 for f in fractions) / len(fractions)) ** 0.5
        return (1 - std) * 100


class NodePorts:
    name = "NodePorts"

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        wanted = host_ports(state.pod)
        for ip, proto, port in wanted:
            for have_ip, have_proto, have_port in node.ports:
                if (
                    port == have_port
                    and proto == have_proto
                    and ("0.0.0.0" in (ip, have_ip) or ip == have_ip)
                ):
                    return "node(s) didn't have free ports for the requested pod ports"
        return None
