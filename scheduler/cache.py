"""What each node already holds, as the scheduler sees it.

A pod counts on its node from the moment the scheduler decides ("assumes")
it, before the binding is even written, so two pods are never placed into
room for one while the watch catches up. A binding that fails is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api import quantity
from api.pods import host_ports, pod_requests

Pod = dict[str, Any]
Node = dict[str, Any]
# Kubernetes scores pods that request nothing as if they asked for this much.
DEFAULT_CPU_MILLI = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


def allocatable(node: Node) -> dict[str, int]:
    """Allocatable resources, cpu in millicores, everything else in units."""
    out = {}
    for name, value in ((node.get("status") or {}).get("allocatable") or {}).items():
        out[name] = quantity.milli_value(value) if name == "cpu" else quantity.value(value)
    return out


@dataclass
class NodeInfo:
    node: Node
    pods: dict[str, Pod] = field(default_factory=dict)  # key -> pod
    requested: dict[str, int] = field(default_factory=dict)
    nonzero: dict[str, int] = field(default_factory=lambda: {"cpu": 0, "memory": 0})
    ports: set[tuple[str, str, int]] = field(default_factory=set)
    # Pods here with required anti-affinity, which every other pod must check (symmetry):
    # kept apart so that a scheduling cycle need not look at every pod of the cluster.
    with_anti_affinity: dict[str, Pod] = field(default_factory=dict)

    _allocatable: tuple[int, dict[str, int]] | None = None  # (id of node dict, values)

    @property
    def allocatable(self) -> dict[str, int]:
        """Parsed once per version of the Node (quantities are costly to parse)."""
        if self._allocatable is None or self._allocatable[0] != id(self.node):
            self._allocatable = (id(self.node), allocatable(self.node))
        return self._allocatable[1]

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.node["metadata"].get("labels") or {})

    def add(self, key: str, pod: Pod) -> None:
        if key in self.pods:
            self.remove(key)
        self.pods[key] = pod
        req = pod_requests(pod)
        for name, amount in req.items():
            self.requested[name] = self.requested.get(name, 0) + amount
        self.nonzero["cpu"] += req.get("cpu") or DEFAULT_CPU_MILLI
        self.nonzero["memory"] += req.get("memory") or DEFAULT_MEMORY
        self.ports |= host_ports(pod)
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        if (affinity.get("podAntiAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ):
            self.with_anti_affinity[key] = pod

    def remove(self, key: str) -> None:
        pod = self.pods.pop(key, None)
        self.with_anti_affinity.pop(key, None)
        if pod is None:
            return
        req = pod_requests(pod)
        for name, amount in req.items():
            self.requested[name] = self.requested.get(name, 0) - amount
        self.nonzero["cpu"] -= req.get("cpu") or DEFAULT_CPU_MILLI
        self.nonzero["memory"] -= req.get("memory") or DEFAULT_MEMORY
        self.ports = set().union(*(host_ports(p) for p in self.pods.values()))


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pod_node: dict[str, str] = {}  # pod key -> node name
        self.assumed: set[str] = set()

    def set_node(self, node: Node) -> None:
        name = node["metadata"]["name"]
        if name in self.nodes:
            self.nodes[name].node = node
        else:
            self.nodes[name] = NodeInfo(node)

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def add_pod(self, key: str, pod: Pod) -> None:
        """A pod bound to a node (from the watch): it counts there."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        self.assumed.discard(key)
        old = self.pod_node.get(key)
        if old and old != node_name and old in self.nodes:
            self.nodes[old].remove(key)
        self.pod_node[key] = node_name
        info = self.nodes.get(node_name)
        if info is None:
            info = self.nodes[node_name] = NodeInfo({"metadata": {"name": node_name}})
        info.add(key, pod)

    def remove_pod(self, key: str) -> None:
        node_name = self.pod_node.pop(key, None)
        self.assumed.discard(key)
        if node_name and node_name in self.nodes:
            self.nodes[node_name].remove(key)

    def assume(self, key: str, pod: Pod, node_name: str) -> None:
        bound = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}}
        self.add_pod(key, bound)
        self.assumed.add(key)

    def forget(self, key: str) -> None:
        if key in self.assumed:
            self.remove_pod(key)

    def schedulable_nodes(self) -> list[NodeInfo]:
        """Nodes that exist as Node objects (not just names pods point at)."""
        return [n for n in self.nodes.values() if "uid" in n.node["metadata"]]
