"""InterPodAffinity: put a pod near the pods it names, or away from them.

A term names pods (a label selector, in some namespaces) and a topology key
(`kubernetes.io/hostname`, `topology.kubernetes.io/zone`, ...); "near" means
"in a node whose value for that key is the same". As in kube-scheduler:

- required podAffinity: the node's domain must hold a matching pod, except
  for the first pod of a group (nothing matches anywhere, and the pod matches
  its own term), which may go anywhere;
- required podAntiAffinity: the node's domain must hold no matching pod;
- and symmetry: a node is also out when an existing pod's required
  anti-affinity names the incoming pod and the node is in that pod's domain;
- preferred terms add (affinity) or subtract (anti-affinity) their weight for
  each matching pod in the node's domain; the framework normalizes the sum.

What the terms count is the same for every node, so it is counted once per
scheduling cycle (pods per topology value) and kept in the cycle state.
Namespaces: a term's `namespaces`, or the namespace of the pod that has the
term; `namespaceSelector: {}` means all namespaces (other selectors need
namespace labels, which the scheduler's cache does not hold).
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import Any

from api.selectors import selector_from_dict
from scheduler.cache import NodeInfo

from . import CycleState

Term = dict[str, Any]
_WITH_ANTI_AFFINITY = attrgetter("with_anti_affinity")


def _names(term: Term, owner: dict[str, Any], pod: dict[str, Any]) -> bool:
    """Whether `term`, written in `owner`'s spec, names `pod`."""
    if term.get("namespaceSelector") != {}:
        namespaces = term.get("namespaces") or [owner["metadata"].get("namespace")]
        if pod["metadata"].get("namespace") not in namespaces:
            return False
    selector = term.get("labelSelector")
    if selector is None:
        return False
    return selector_from_dict(selector).matches(pod["metadata"].get("labels") or {})


def _terms(pod: dict[str, Any], kind: str, required: bool) -> list[Term]:
    section = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    if required:
        return list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    return list(section.get("preferredDuringSchedulingIgnoredDuringExecution") or [])


def _counts(state: CycleState, term: Term) -> Counter[str]:
    """Matching pods per value of the term's topology key, across the cluster."""
    cache = state.data.setdefault("interpod.counts", {})
    key = id(term)
    if key not in cache:
        topology = term.get("topologyKey", "")
        counts: Counter[str] = Counter()
        for node in state.all_nodes:
            value = node.labels.get(topology)
            matching = sum(1 for p in node.pods.values() if _names(term, state.pod, p))
            if value is not None and matching:
                counts[value] += matching
        cache[key] = counts
    return cache[key]


def _in_domain(state: CycleState, term: Term, node: NodeInfo) -> int:
    value = node.labels.get(term.get("topologyKey", ""))
    return 0 if value is None else _counts(state, term)[value]


def _forbidden_by_existing(state: CycleState) -> set[tuple[str, str]]:
    """(topology key, value) pairs where an existing pod's required anti-affinity
    names the incoming pod: the symmetric half of anti-affinity."""
    if "interpod.forbidden" not in state.data:
        forbidden: set[tuple[str, str]] = set()
        for node in state.all_nodes:
            for existing in node.with_anti_affinity.values():
                for term in _terms(existing, "podAntiAffinity", required=True):
                    topology = term.get("topologyKey", "")
                    value = node.labels.get(topology)
                    if value is not None and _names(term, existing, state.pod):
                        forbidden.add((topology, value))
        state.data["interpod.forbidden"] = forbidden
    return state.data["interpod.forbidden"]


class InterPodAffinity:
    name = "InterPodAffinity"
    weight = 2
    reverse = False  # affinity counts up, anti-affinity down

    def skip(self, state: CycleState) -> bool:
        """Nothing to check when the pod has no required terms and no pod in the
        cluster has required anti-affinity (the symmetric half)."""
        return (
            not _terms(state.pod, "podAntiAffinity", required=True)
            and not _terms(state.pod, "podAffinity", required=True)
            and not any(map(_WITH_ANTI_AFFINITY, state.all_nodes))
        )

    def scores(self, state: CycleState, nodes: list[NodeInfo]) -> list[float]:
        if not _terms(state.pod, "podAffinity", required=False) and not _terms(
            state.pod, "podAntiAffinity", required=False
        ):
            return [0.0] * len(nodes)
        return [self.score(state, n) for n in nodes]

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        labels = node.labels
        if any(labels.get(k) == v for k, v in _forbidden_by_existing(state)):
            return "node(s) didn't satisfy existing pods anti-affinity rules"
        for term in _terms(state.pod, "podAntiAffinity", required=True):
            if _in_domain(state, term, node):
                return "node(s) didn't match pod anti-affinity rules"
        required = _terms(state.pod, "podAffinity", required=True)
        if any(term.get("topologyKey", "") not in labels for term in required):
            return "node(s) didn't match pod affinity rules"
        if not all(_in_domain(state, term, node) for term in required):
            first_of_its_group = not any(_counts(state, t) for t in required) and all(
                _names(t, state.pod, state.pod) for t in required
            )
            if not first_of_its_group:
                return "node(s) didn't match pod affinity rules"
        return None

    def score(self, state: CycleState, node: NodeInfo) -> float:
        total = 0.0
        for kind, sign in (("podAffinity", 1), ("podAntiAffinity", -1)):
            for weighted in _terms(state.pod, kind, required=False):
                term = weighted.get("podAffinityTerm") or {}
                total += sign * int(weighted.get("weight", 0)) * _in_domain(state, term, node)
        return total
