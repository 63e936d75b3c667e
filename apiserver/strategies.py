"""What the server does to an object on its way into etcd, per kind.

These are kube-apiserver's "strategies" (pkg/registry/*/strategy.go), reduced to
the rules a user can observe:

- the main resource never writes `status`, and `/status` writes nothing else;
- `metadata.generation` starts at 1 and moves only when `spec` changes, so a
  controller can tell "has my latest spec been acted on" from
  `status.observedGeneration`;
- the server, not the client, owns `uid`, `creationTimestamp`,
  `deletionTimestamp` and `generation`.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import Any

from api.resources import ResourceInfo

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

# Kinds whose spec changes bump metadata.generation (as in Kubernetes 1.32;
# pods only gained a generation in 1.33).
GENERATION_KINDS = frozenset(
    {
        "Deployment",
        "ReplicaSet",
        "Service",
        "EndpointSlice",
        "Job",
        "CronJob",
        "DaemonSet",
        "StatefulSet",
        "ReplicationController",
        "HorizontalPodAutoscaler",
    }
)

# generateName suffix alphabet: Kubernetes' (no vowels, no easily confused characters).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def _initial_status(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any] | None:
    """What a freshly created object's status is reset to (None: keep the client's)."""
    if info.kind == "Pod":
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec", {}))}
    if info.kind in ("Deployment", "ReplicaSet"):
        return {}
    if info.kind == "Service":
        return {"loadBalancer": {}}
    if info.kind == "Namespace":
        return {"phase": "Active"}
    if info.kind in ("Job", "CronJob"):
        return {}
    if info.kind == "DaemonSet":
        return {
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }
    if info.kind == "StatefulSet":
        return {"replicas": 0, "availableReplicas": 0}
    if info.kind == "ReplicationController":
        return {"replicas": 0}
    if info.kind in ("PersistentVolumeClaim", "PersistentVolume"):
        return {"phase": "Pending"}
    if info.kind == "HorizontalPodAutoscaler":
        return {"currentReplicas": 0, "desiredReplicas": 0}
    return None


def generate_job_selector(job: dict[str, Any]) -> None:
    """A Job selects its pods by its own uid, unless `manualSelector` says otherwise.

    As Kubernetes' Job strategy does: the selector is
    `batch.kubernetes.io/controller-uid=<uid>` and the pod template gets that
    label plus `batch.kubernetes.io/job-name` (and the legacy unprefixed twins).
    """
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector"):
        return
    uid, name = job["metadata"]["uid"], job["metadata"].get("name", "")
    template = spec.get("template")
    if isinstance(template, dict):
        tmeta = template.get("metadata")
        if not isinstance(tmeta, dict):
            tmeta = template["metadata"] = {}
        labels = tmeta.get("labels")
        if not isinstance(labels, dict):
            labels = tmeta["labels"] = {}
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
    if not spec.get("selector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


def prepare_for_create(info: ResourceInfo, obj: dict[str, Any], now: str) -> None:
    meta = obj.setdefault("metadata", {})
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now
    for owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
        meta.pop(owned, None)
    if info.kind in GENERATION_KINDS or _custom(info):
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if info.kind == "Job":
        generate_job_selector(obj)
    if info.kind == "CustomResourceDefinition":
        # Its objects are deleted before it goes (apiserver/crd/controller.py).
        finalizers = meta.setdefault("finalizers", [])
        if CRD_CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CRD_CLEANUP_FINALIZER)
    if info.has_status:
        status = _initial_status(info, obj)
        if status is not None:
            obj["status"] = status


def prepare_for_update(
    info: ResourceInfo, new: dict[str, Any], old: dict[str, Any], subresource: str
) -> None:
    """Carry over what this kind of write may not change."""
    new_meta = new.setdefault("metadata", {})
    old_meta = old["metadata"]
    for owned in (
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ):
        if owned in old_meta:
            new_meta[owned] = old_meta[owned]
        else:
            new_meta.pop(owned, None)
    if subresource == "status":
        # A status write changes status only; everything else stays as stored.
        status = new.get("status")
        new.clear()
        new.update(copy.deepcopy(old))
        if status is not None:
            new["status"] = status
        else:
            new.pop("status", None)
        return
    if info.has_status and subresource == "":
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if info.kind in GENERATION_KINDS and new.get("spec") != old.get("spec"):
        new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
    elif _custom(info) and _content(new, info) != _content(old, info):
        # A custom object's generation moves with anything but metadata (and
        # status, when /status is its own subresource), as Kubernetes does.
        new_meta["generation"] = int(old_meta.get("generation", 1)) + 1


def _custom(info: ResourceInfo) -> bool:
    """A CRD's kind (stored under <group>/<plural>) or a CRD itself."""
    return info.custom is not None or "/" in info.storage or info.kind == "CustomResourceDefinition"


def _content(obj: dict[str, Any], info: ResourceInfo) -> dict[str, Any]:
    skip = {"metadata", "status"} if info.has_status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort, as Kubernetes classifies a pod."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            request = requests.get(name, limit)
            if limit is None or str(request) != str(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def graceful_period(info: ResourceInfo, obj: dict[str, Any], requested: int | None) -> int:
    """How long a delete waits for the object's owner (the kubelet) to confirm.

    Only pods delete gracefully; a pod that was never bound to a node, or has
    already finished, has nobody to confirm and goes at once.
    """
    if info.kind != "Pod":
        return 0
    spec = obj.get("spec", {})
    if not spec.get("nodeName"):
        return 0
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    return int(spec.get("terminationGracePeriodSeconds", 30))


def label_selector_string(selector: dict[str, Any] | None) -> str:
    """A metav1.LabelSelector as the text a Scale's status.selector carries."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
