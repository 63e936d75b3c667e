"""What each node already holds, as the scheduler sees it.

A pod counts on its node from the moment the scheduler decides ("assumes")
it, before the binding is even written, so two pods are never placed into
room for one while the watch catches up. A binding that fails is forgotten.
"""

from __future__ import annotations

from typing import Any

from api import quantity
from api.pods import host_ports, pod_requests

Pod = dict[str, Any]
Port = tuple[str, str, int]
Node = dict[str, Any]
# Kubernetes scores pods that request nothing as if they asked for this much.
DEFAULT_CPU_MILLI = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
HARD_EFFECTS = ("NoSchedule", "NoExecute")
NO_PORTS: frozenset[Port] = frozenset()  # shared by the pods without host ports


def allocatable(node: Node) -> dict[str, int]:
    """Allocatable resources, cpu in millicores, everything else in units."""
    out = {}
    for name, value in ((node.get("status") or {}).get("allocatable") or {}).items():
        out[name] = quantity.milli_value(value) if name == "cpu" else quantity.value(value)
    return out


class NodeInfo:
    """One node as the scheduler sees it: the Node's facts parsed once per version of the
    Node (kube-scheduler's NodeInfo), and the pods counted on it, kept up to date
    incrementally as pods are assumed, bound and deleted (never rebuilt per pod)."""

    def __init__(self, node: Node) -> None:
        self.pods: dict[str, Pod] = {}  # key -> pod
        # What each pod added, so that taking it away again needs no parsing.
        self._added: dict[str, tuple[dict[str, int], frozenset[Port] | set[Port]]] = {}
        self.requested: dict[str, int] = {}
        self.nonzero: dict[str, int] = {"cpu": 0, "memory": 0}
        self.ports: set[tuple[str, str, int]] = set()
        # Pods here with required anti-affinity, which every other pod must check (symmetry):
        # kept apart so that a scheduling cycle need not look at every pod of the cluster.
        self.with_anti_affinity: dict[str, Pod] = {}
        self.node = node

    @property
    def node(self) -> Node:
        return self._node

    @node.setter
    def node(self, node: Node) -> None:
        """A new version of the Node: parse what the plugins read on every cycle."""
        self._node = node
        meta = node["metadata"]
        spec = node.get("spec") or {}
        self.name: str = str(meta["name"])
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.exists = "uid" in meta  # a Node object, not just a name pods point at
        self.unschedulable = bool(spec.get("unschedulable"))
        self.taints: list[dict[str, Any]] = list(spec.get("taints") or [])
        self.hard_taints = [t for t in self.taints if t.get("effect") in HARD_EFFECTS]
        self.soft_taints = [t for t in self.taints if t.get("effect") == "PreferNoSchedule"]
        self.allocatable = allocatable(node)
        self.alloc_cpu = self.allocatable.get("cpu", 0)
        self.alloc_memory = self.allocatable.get("memory", 0)
        self.alloc_pods: float = self.allocatable.get("pods", float("inf"))

    def add(self, key: str, pod: Pod) -> None:
        if key in self.pods:
            self.remove(key)
        self.pods[key] = pod
        req = pod_requests(pod)
        ports = host_ports(pod) or NO_PORTS
        self._added[key] = (req, ports)
        for name, amount in req.items():
            self.requested[name] = self.requested.get(name, 0) + amount
        self.nonzero["cpu"] += req.get("cpu") or DEFAULT_CPU_MILLI
        self.nonzero["memory"] += req.get("memory") or DEFAULT_MEMORY
        self.ports |= ports
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
        req, ports = self._added.pop(key)
        for name, amount in req.items():
            self.requested[name] = self.requested.get(name, 0) - amount
        self.nonzero["cpu"] -= req.get("cpu") or DEFAULT_CPU_MILLI
        self.nonzero["memory"] -= req.get("memory") or DEFAULT_MEMORY
        if ports:  # only then can the node's set of ports in use shrink
            self.ports = set().union(*(p for _, p in self._added.values()))


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pod_node: dict[str, str] = {}  # pod key -> node name
        self.assumed: set[str] = set()
        self._schedulable: list[NodeInfo] | None = None  # rebuilt only when nodes change

    def set_node(self, node: Node) -> None:
        name = node["metadata"]["name"]
        if name in self.nodes:
            self.nodes[name].node = node
        else:
            self.nodes[name] = NodeInfo(node)
        self._schedulable = None

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self._schedulable = None

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
            self._schedulable = None
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
        """Nodes that exist as Node objects (not just names pods point at). The same list
        serves every cycle until a node comes, goes or changes: callers must not change it."""
        if self._schedulable is None:
            self._schedulable = [n for n in self.nodes.values() if n.exists]
        return self._schedulable
