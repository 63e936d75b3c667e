"""Filter and score plugins, each with one job and the name kube-scheduler gives it.

A filter answers "can this pod run on this node?" with None (yes) or the
reason a person reads in `FailedScheduling`. A score answers "how good is
this node?" with a raw number; the framework normalizes and weighs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from scheduler.cache import NodeInfo

Pod = dict[str, Any]


@dataclass
class CycleState:
    """Facts computed once per pod per cycle and shared by the plugins."""

    pod: Pod
    all_nodes: list[NodeInfo]
    data: dict[str, Any] = field(default_factory=dict)


class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, node: NodeInfo) -> str | None: ...


class ScorePlugin(Protocol):
    name: str
    weight: int
    reverse: bool  # True when a lower raw score is better

    def score(self, state: CycleState, node: NodeInfo) -> float: ...
