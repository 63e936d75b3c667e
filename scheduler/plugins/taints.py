"""TaintToleration: a node's NoSchedule/NoExecute taints keep out pods that do not
tolerate them; PreferNoSchedule taints only lower the node's score."""

from __future__ import annotations

from operator import attrgetter

from api.taints import tolerated
from scheduler.cache import NodeInfo

from . import CycleState

_SOFT_TAINTS = attrgetter("soft_taints")


class TaintToleration:
    name = "TaintToleration"
    weight = 3
    reverse = True  # fewer untolerated PreferNoSchedule taints is better

    def skip(self, state: CycleState) -> bool:
        return False

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        if not node.hard_taints:  # most nodes: nothing to tolerate
            return None
        tolerations = (state.pod.get("spec") or {}).get("tolerations") or []
        for taint in node.hard_taints:
            if not tolerated(taint, tolerations):
                return (
                    f"node(s) had untolerated taint {{{taint.get('key')}: "
                    f"{taint.get('value') or ''}}}"
                )
        return None

    def scores(self, state: CycleState, nodes: list[NodeInfo]) -> list[float]:
        if not any(map(_SOFT_TAINTS, nodes)):
            return [0.0] * len(nodes)
        return [self.score(state, n) if n.soft_taints else 0.0 for n in nodes]

    def score(self, state: CycleState, node: NodeInfo) -> float:
        tolerations = (state.pod.get("spec") or {}).get("tolerations") or []
        return float(sum(1 for t in node.soft_taints if not tolerated(t, tolerations)))
