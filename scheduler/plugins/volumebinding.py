"""VolumeBinding: a pod goes only where its claims' volumes can be reached.

As kube-scheduler's plugin does, in its steps:
- PreFilter: every claim the pod names must exist and not be going away; an unbound
  claim of an `Immediate` class must be bound by the PV controller first.
- Filter: a bound claim's volume must be reachable from the node (its nodeAffinity);
  an unbound `WaitForFirstConsumer` claim needs a free volume reachable from the node
  or a class with a provisioner.
- PreBind (`claims_to_bind` here, the waiting in scheduler.py): the unbound claims get
  the `volume.kubernetes.io/selected-node` annotation, so that the PV controller binds a
  volume on that node or the provisioner makes one there; the pod is bound only once
  its claims are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api import storage as st
from scheduler.cache import NodeInfo

from . import CycleState


@dataclass
class Volumes:
    """What the scheduler's caches hold of claims, volumes and classes."""

    claims: dict[str, dict[str, Any]] = field(default_factory=dict)  # "ns/name" -> claim
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> PV
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> StorageClass


@dataclass
class PodClaims:
    bound: list[dict[str, Any]]  # the volumes of bound claims
    delayed: list[dict[str, Any]]  # unbound WaitForFirstConsumer claims


def pod_claims(pod: dict[str, Any], view: Volumes) -> PodClaims | str:
    """PreFilter: the pod's claims sorted out, or why no node can take the pod."""
    namespace = pod["metadata"].get("namespace", "default")
    bound: list[dict[str, Any]] = []
    delayed: list[dict[str, Any]] = []
    for name in st.claim_names(pod):
        claim = view.claims.get(f"{namespace}/{name}")
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found'
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name and (claim.get("status") or {}).get("phase") == "Bound":
            pv = view.volumes.get(volume_name)
            if pv is None:
                return "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
            bound.append(pv)
            continue
        sc = view.classes.get(st.claim_class(claim))
        if not st.is_delayed(sc):
            return "pod has unbound immediate PersistentVolumeClaims"
        delayed.append(claim)
    return PodClaims(bound, delayed)


def node_fits(claims: PodClaims, view: Volumes, node: dict[str, Any]) -> str | None:
    """Filter: None when the node can serve every claim, else the reason per node."""
    for pv in claims.bound:
        if not st.node_fits(pv, node):
            return "node(s) had volume node affinity conflict"
    taken: set[str] = set()
    for claim in claims.delayed:
        free = [v for v in view.volumes.values() if v["metadata"]["name"] not in taken]
        pv = st.find_best_volume(claim, free, node)
        if pv is not None:
            taken.add(pv["metadata"]["name"])
            continue
        provisioner = (view.classes.get(st.claim_class(claim)) or {}).get("provisioner", "")
        if not provisioner or provisioner == st.NO_PROVISIONER:
            return "node(s) didn't find available persistent volumes to bind"
    return None


def claims_to_bind(pod: dict[str, Any], view: Volumes) -> list[dict[str, Any]]:
    """The pod's claims that still wait for a node (PreBind annotates these)."""
    claims = pod_claims(pod, view)
    return claims.delayed if isinstance(claims, PodClaims) else []


def all_bound(pod: dict[str, Any], view: Volumes) -> bool:
    claims = pod_claims(pod, view)
    return isinstance(claims, PodClaims) and not claims.delayed


class VolumeBinding:
    name = "VolumeBinding"

    def pre_filter(self, state: CycleState) -> str | None:
        view = state.data.get("volumes")
        if view is None or not st.claim_names(state.pod):
            return None
        claims = pod_claims(state.pod, view)
        if isinstance(claims, str):
            return claims
        state.data["pod_claims"] = claims
        return None

    def skip(self, state: CycleState) -> bool:
        """After PreFilter: a pod without claims to check asks nothing of a node."""
        return state.data.get("pod_claims") is None

    def filter(self, state: CycleState, node: NodeInfo) -> str | None:
        claims = state.data.get("pod_claims")
        if claims is None:
            return None
        return node_fits(claims, state.data["volumes"], node.node)
