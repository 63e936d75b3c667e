"""Storage rules shared by the PV binder, the scheduler's VolumeBinding plugin and the
node's local-path provisioner: which volume satisfies which claim, where a volume can
be reached from, and the annotations Kubernetes puts on claims and volumes."""

from __future__ import annotations

from typing import Any

from . import quantity
from .nodeaffinity import term_matches
from .selectors import selector_from_dict

SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
LOCAL_PATH_PROVISIONERS = ("rancher.io/local-path", "skiff.io/local-path")
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def claim_class(claim: dict[str, Any]) -> str:
    return (claim.get("spec") or {}).get("storageClassName") or ""


def volume_class(pv: dict[str, Any]) -> str:
    return (pv.get("spec") or {}).get("storageClassName") or ""


def requested_bytes(claim: dict[str, Any]) -> int:
    storage = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get(
        "storage", 0
    )
    return quantity.value(storage)


def capacity_bytes(pv: dict[str, Any]) -> int:
    return quantity.value(((pv.get("spec") or {}).get("capacity") or {}).get("storage", 0))


def is_delayed(storage_class: dict[str, Any] | None) -> bool:
    """Binding waits for a pod to be scheduled (the class's WaitForFirstConsumer)."""
    return bool(storage_class) and (
        storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
    )


def claim_ref_is(pv: dict[str, Any], claim: dict[str, Any]) -> bool:
    """The volume's claimRef names this claim (a ref without uid: pre-bound by name)."""
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    meta = claim.get("metadata") or {}
    if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def node_fits(pv: dict[str, Any], node: dict[str, Any]) -> bool:
    """CheckNodeAffinity: a volume without nodeAffinity is reachable from every node."""
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(term_matches(t, node) for t in terms)


def mismatch(pv: dict[str, Any], claim: dict[str, Any]) -> str:
    """checkVolumeSatisfyClaim: why the volume cannot serve the claim ('' when it can)."""
    pspec, cspec = pv.get("spec") or {}, claim.get("spec") or {}
    if capacity_bytes(pv) < requested_bytes(claim):
        return "requested PV is too small"
    if volume_class(pv) != claim_class(claim):
        return "storageClassName does not match"
    if (pspec.get("volumeMode") or "Filesystem") != (cspec.get("volumeMode") or "Filesystem"):
        return "incompatible volumeMode"
    if not set(cspec.get("accessModes") or []) <= set(pspec.get("accessModes") or []):
        return "incompatible accessMode"
    return ""


def find_best_volume(
    claim: dict[str, Any], volumes: list[dict[str, Any]], node: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """findMatchingVolume: a volume pre-bound to the claim first, else the smallest free
    volume that satisfies it (class, mode, access modes, size, selector, and when `node`
    is given, reachable from that node)."""
    selector = (claim.get("spec") or {}).get("selector")
    best: dict[str, Any] | None = None
    for pv in volumes:
        meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
        if meta.get("deletionTimestamp") or mismatch(pv, claim):
            continue
        if node is not None and not node_fits(pv, node):
            continue
        if spec.get("claimRef"):
            if claim_ref_is(pv, claim):
                return pv
            continue
        if (pv.get("status") or {}).get("phase") not in (None, "", "Pending", "Available"):
            continue
        if selector and not selector_from_dict(selector).matches(meta.get("labels") or {}):
            continue
        if best is None or capacity_bytes(pv) < capacity_bytes(best):
            best = pv
    return best


def claim_ref(claim: dict[str, Any]) -> dict[str, Any]:
    meta = claim["metadata"]
    return {
        "kind": "PersistentVolumeClaim",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "apiVersion": "v1",
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def volume_path(pv: dict[str, Any]) -> str:
    spec = pv.get("spec") or {}
    return ((spec.get("hostPath") or spec.get("local")) or {}).get("path", "")


def claim_names(pod: dict[str, Any]) -> list[str]:
    """The claims the pod's persistentVolumeClaim volumes name."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim")
        if source and source.get("claimName"):
            out.append(source["claimName"])
    return out
