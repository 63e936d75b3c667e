"""NodeResourcesFit (filter), least allocated and balanced allocation (scores), NodePorts."""

from __future__ import annotations

from scheduler.cache import DEFAULT_CPU_MILLI, DEFAULT_MEMORY, NodeInfo

from . import CycleState

MESSAGES = {
    "cpu": "Insufficient cpu",
    "memory": "Insufficient memory",
    "ephemeral-storage": "Insufficient ephemeral-storage",
}


class NodeResourcesFit:
    name = "NodeResourcesFit"
    weight = 1
    reverse = False

    def skip(self, state: CycleState) -> bool:
        return False

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        if len(node.pods) >= node.alloc_pods:
            return "Too many pods"
        capacity = node.allocatable
        for name, amount in state.positive_requests:
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
        return _least_allocated(_fractions(state, node))

    def scores(self, state: CycleState, nodes: list[NodeInfo]) -> list[float]:
        shares = _shares(state, nodes)
        if shares is not None:
            return [(2 - c - m) * 50 for c, m in zip(*shares, strict=True)]
        return [self.score(state, n) for n in nodes]


def _least_allocated(fractions: list[float]) -> float:
    if len(fractions) == 2:
        return (2 - fractions[0] - fractions[1]) * 50
    if not fractions:
        return 0.0
    return sum((1 - f) * 100 for f in fractions) / len(fractions)


def _fractions(state: CycleState, node: NodeInfo) -> list[float]:
    """The shares of the node's cpu and memory in use once this pod is there."""
    requests = state.requests
    out = []
    cpu, memory = node.alloc_cpu, node.alloc_memory
    if cpu:
        used = node.nonzero["cpu"] + (requests.get("cpu") or DEFAULT_CPU_MILLI)
        out.append(min(used / cpu, 1.0))
    if memory:
        used = node.nonzero["memory"] + (requests.get("memory") or DEFAULT_MEMORY)
        out.append(min(used / memory, 1.0))
    return out


def _shares(state: CycleState, nodes: list[NodeInfo]) -> tuple[list[float], list[float]] | None:
    """`_fractions` of every node scored this cycle as two lists (cpu, memory), computed
    once for both plugins; None when some node lacks cpu or memory (the slow path)."""
    cached = state.data.get("shares")
    if cached is not None and cached[0] is nodes:
        return cached[1]
    shares = None
    if all(n.alloc_cpu and n.alloc_memory for n in nodes):
        cpu = state.requests.get("cpu") or DEFAULT_CPU_MILLI
        memory = state.requests.get("memory") or DEFAULT_MEMORY
        shares = (
            [u if (u := (n.nonzero["cpu"] + cpu) / n.alloc_cpu) < 1.0 else 1.0 for n in nodes],
            [
                u if (u := (n.nonzero["memory"] + memory) / n.alloc_memory) < 1.0 else 1.0
                for n in nodes
            ],
        )
    state.data["shares"] = (nodes, shares)
    return shares


class BalancedAllocation:
    name = "NodeResourcesBalancedAllocation"
    weight = 1
    reverse = False

    def score(self, state: CycleState, node: NodeInfo) -> float:
        """100 when cpu and memory would be used in equal shares, less the more they differ."""
        return _balanced(_fractions(state, node))

    def scores(self, state: CycleState, nodes: list[NodeInfo]) -> list[float]:
        shares = _shares(state, nodes)
        if shares is not None:
            return [(1 - abs(c - m) / 2) * 100 for c, m in zip(*shares, strict=True)]
        return [self.score(state, n) for n in nodes]


def _balanced(fractions: list[float]) -> float:
    if len(fractions) == 2:  # the standard deviation of two shares is half their distance
        return (1 - abs(fractions[0] - fractions[1]) / 2) * 100
    if len(fractions) < 2:
        return 0.0
    mean = sum(fractions) / len(fractions)
    std = (sum((f - mean) ** 2 for f in fractions) / len(fractions)) ** 0.5
    return (1 - std) * 100


class NodePorts:
    name = "NodePorts"

    def skip(self, state: CycleState) -> bool:
        return not state.host_ports

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        for ip, proto, port in state.host_ports:
            for have_ip, have_proto, have_port in node.ports:
                if (
                    port == have_port
                    and proto == have_proto
                    and ("0.0.0.0" in (ip, have_ip) or ip == have_ip)
                ):
                    return "node(s) didn't have free ports for the requested pod ports"
        return None
