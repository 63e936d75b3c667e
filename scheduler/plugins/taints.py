"""TaintToleration: a node's NoSchedule/NoExecute taints keep out pods that do not
tolerate them; PreferNoSchedule taints only lower the node's score."""

from __future__ import annotations

from typing import Any

from api.taints import tolerated
from scheduler.cache import NodeInfo

from . import CycleState


class TaintToleration:
    name = "TaintToleration"
    weight = 3
    reverse = True  # fewer untolerated PreferNoSchedule taints is better

    def _taints(self, node: NodeInfo) -> list[dict[str, Any]]:
        return list((node.node.get("spec") or {}).get("taints") or [])

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        tolerations = (state.pod.get("spec") or {}).get("tolerations") or []
        for taint in self._taints(node):
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(
                taint, tolerations
            ):
                return (
                    f"node(s) had untolerated taint {{{taint.get('key')}: "
                    f"{taint.get('value') or ''}}}"
                )
        return None

    def score(self, state: CycleState, node: NodeInfo) -> float:
        tolerations = (state.pod.get("spec") or {}).get("tolerations") or []
        return float(
            sum(
                1
                for t in self._taints(node)
                if t.get("effect") == "PreferNoSchedule" and not tolerated(t, tolerations)
            )
        )
