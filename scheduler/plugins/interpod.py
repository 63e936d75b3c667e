"""InterPodAffinity, the anti-affinity half: keep a pod away from pods it names.

Required anti-affinity terms are a filter (no node whose topology domain
already holds a matching pod); preferred ones lower a node's score by their
weight for each matching pod in its domain.
"""

from __future__ import annotations

from typing import Any

from api.selectors import selector_from_dict
from scheduler.cache import NodeInfo

from . import CycleState


def _matches(term: dict[str, Any], pod: dict[str, Any], incoming: dict[str, Any]) -> bool:
    namespaces = term.get("namespaces") or [incoming["metadata"].get("namespace")]
    if pod["metadata"].get("namespace") not in namespaces:
        return False
    selector = term.get("labelSelector")
    if selector is None:
        return False
    return selector_from_dict(selector).matches(pod["metadata"].get("labels") or {})


def _domain_has_match(term: dict[str, Any], state: CycleState, node: NodeInfo) -> int:
    key = term.get("topologyKey", "")
    value = node.labels.get(key)
    if value is None:
        return 0
    count = 0
    for other in state.all_nodes:
        if other.labels.get(key) != value:
            continue
        count += sum(1 for p in other.pods.values() if _matches(term, p, state.pod))
    return count


def _anti(pod: dict[str, Any]) -> dict[str, Any]:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}


class InterPodAffinity:
    name = "InterPodAffinity"
    weight = 2
    reverse = True  # more matching pods nearby is worse

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        for term in _anti(state.pod).get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            if _domain_has_match(term, state, node):
                return "node(s) didn't match pod anti-affinity rules"
        return None

    def score(self, state: CycleState, node: NodeInfo) -> float:
        total = 0.0
        for weighted in (
            _anti(state.pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ):
            term = weighted.get("podAffinityTerm") or {}
            total += int(weighted.get("weight", 0)) * _domain_has_match(term, state, node)
        return total
