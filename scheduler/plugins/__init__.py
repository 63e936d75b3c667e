"""Filter and score plugins, each with one job and the name kube-scheduler gives it.

A filter answers "can this pod run on this node?" with None (yes) or the
reason a person reads in `FailedScheduling`. A score answers "how good is
this node?" with a raw number; the framework normalizes and weighs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from api.pods import host_ports, pod_requests
from scheduler.cache import NodeInfo

Pod = dict[str, Any]


@dataclass
class CycleState:
    """Facts computed once per pod per cycle and shared by the plugins."""

    pod: Pod
    all_nodes: list[NodeInfo]
    data: dict[str, Any] = field(default_factory=dict)
    requests: dict[str, int] = field(init=False)
    host_ports: set[tuple[str, str, int]] = field(init=False)
    positive_requests: list[tuple[str, int]] = field(init=False)  # what a node must have

    def __post_init__(self) -> None:
        self.requests = pod_requests(self.pod)
        self.host_ports = host_ports(self.pod)
        self.positive_requests = [(k, v) for k, v in self.requests.items() if v > 0]


class FilterPlugin(Protocol):
    name: str

    def skip(self, state: CycleState) -> bool:
        """PreFilter's Skip: this pod asks nothing of this plugin, every node passes it."""
        ...

    def filter(self, state: CycleState, node: NodeInfo) -> str | None: ...


class ScorePlugin(Protocol):
    name: str
    weight: int
    reverse: bool  # True when a lower raw score is better

    def score(self, state: CycleState, node: NodeInfo) -> float: ...

    def scores(self, state: CycleState, nodes: list[NodeInfo]) -> list[float]:
        """Raw scores of `nodes`, in order: one call per cycle, so a plugin whose score
        cannot differ between nodes for this pod answers without looking at each."""
        ...
