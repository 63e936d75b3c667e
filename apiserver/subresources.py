"""Subresources that are views of their parent: scale, binding, eviction, finalize.

Each is a small translation to and from the parent object, written through
the same guarded update as every other write, so resourceVersion checks,
validation and watch events behave exactly as for the parent.
"""

from __future__ import annotations

import copy
from typing import Any

from api.errors import FieldError
from api.resources import ResourceInfo

from . import errors, strategies
from .crd import scale as crd_scale


def to_scale(obj: dict[str, Any], info: ResourceInfo | None = None) -> dict[str, Any]:
    """An autoscaling/v1 Scale of a Deployment or ReplicaSet (or a custom resource's)."""
    if info is not None and info.custom is not None:
        return crd_scale.to_scale(info, obj)
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int(spec.get("replicas", 0))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0)),
            "selector": strategies.label_selector_string(
                # A ReplicationController's selector is a plain map of labels.
                {"matchLabels": spec.get("selector")}
                if obj.get("kind") == "ReplicationController"
                else spec.get("selector")
            ),
        },
    }


def apply_scale(info: ResourceInfo, current: dict[str, Any], scale: Any) -> dict[str, Any]:
    """The parent with the Scale's replicas, guarded by the Scale's resourceVersion."""
    if info.custom is not None:
        return crd_scale.apply_scale(info, current, scale)
    if not isinstance(scale, dict):
        raise errors.bad_request("the body must be an autoscaling/v1 Scale object")
    if scale.get("kind", "Scale") != "Scale":
        raise errors.bad_request(f'the kind in the data ("{scale.get("kind")}") must be "Scale"')
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    name = current["metadata"]["name"]
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        problem = FieldError("spec.replicas", "FieldValueInvalid", "must be an integer", replicas)
        raise errors.invalid("Scale", "autoscaling", name, [problem])
    if replicas < 0:
        problem = FieldError(
            "spec.replicas", "FieldValueInvalid", "must be greater than or equal to 0", replicas
        )
        raise errors.invalid("Scale", "autoscaling", name, [problem])
    wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
    new = copy.deepcopy(current)
    new.setdefault("spec", {})["replicas"] = replicas
    if wanted_rv:
        new["metadata"]["resourceVersion"] = str(wanted_rv)
    return new


def bind(pod: dict[str, Any], binding: Any, now: str) -> dict[str, Any]:
    """pods/binding: set spec.nodeName once, as the scheduler's Bind does."""
    if not isinstance(binding, dict):
        raise errors.bad_request("the body must be a v1 Binding object")
    target = binding.get("target") or {}
    node = target.get("name", "")
    name = pod["metadata"]["name"]
    if not node:
        problem = FieldError("target.name", "FieldValueRequired")
        raise errors.invalid("Binding", "", name, [problem])
    if target.get("kind", "Node") not in ("Node", ""):
        problem = FieldError("target.kind", "FieldValueNotSupported", "", target.get("kind"))
        raise errors.invalid("Binding", "", name, [problem])
    meta = pod["metadata"]
    if meta.get("deletionTimestamp"):
        raise errors.conflict("pods", "", name, f"pod {name} is being deleted, cannot be assigned")
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise errors.conflict(
            "pods", "", name, f'pod {name} is already assigned to node "{current}"'
        )
    wanted_uid = (binding.get("metadata") or {}).get("uid")
    if wanted_uid and wanted_uid != meta.get("uid"):
        raise errors.conflict(
            "pods",
            "",
            name,
            f"Precondition failed: UID in precondition: {wanted_uid}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    pod.setdefault("spec", {})["nodeName"] = node
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
    )
    status["conditions"] = conditions
    return pod


def finalize(namespace: dict[str, Any], body: Any) -> dict[str, Any]:
    """namespaces/finalize: only spec.finalizers changes."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be a v1 Namespace object")
    finalizers = (body.get("spec") or {}).get("finalizers") or []
    namespace.setdefault("spec", {})["finalizers"] = list(finalizers)
    wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
    if wanted_rv:
        namespace["metadata"]["resourceVersion"] = str(wanted_rv)
    return namespace


EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")


def check_eviction(eviction: Any, name: str) -> None:
    """An Eviction body as kube-apiserver accepts it: policy/v1 (or v1beta1), naming
    the pod of the URL, with deleteOptions an object when given."""
    if not isinstance(eviction, dict):
        raise errors.bad_request("the body of the request must be an Eviction object")
    api_version, kind = eviction.get("apiVersion"), eviction.get("kind")
    if kind not in (None, "Eviction") or api_version not in (None, *EVICTION_VERSIONS):
        raise errors.bad_request(
            f"expected policy/v1 Eviction, got {api_version or '?'} {kind or '?'}"
        )
    meta = eviction.get("metadata") or {}
    if not isinstance(meta, dict) or meta.get("name") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    if not isinstance(eviction.get("deleteOptions") or {}, dict):
        raise errors.bad_request("deleteOptions must be an object")
