"""The scale subresource of a custom resource: its replicas at the definition's paths."""

from __future__ import annotations

import copy
from typing import Any

from api import crd
from api.errors import FieldError
from api.resources import ResourceInfo

from .. import errors


def to_scale(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """An autoscaling/v1 Scale read from specReplicasPath, statusReplicasPath and
    labelSelectorPath, as kube-apiserver builds it for a custom resource."""
    custom: crd.CustomVersion = info.custom
    meta = obj["metadata"]
    spec_replicas = crd.json_path(obj, custom.spec_replicas_path)
    status_replicas = crd.json_path(obj, custom.status_replicas_path)
    selector = crd.json_path(obj, custom.label_selector_path) if custom.label_selector_path else ""
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int(spec_replicas) if isinstance(spec_replicas, int) else 0},
        "status": {
            "replicas": int(status_replicas) if isinstance(status_replicas, int) else 0,
            "selector": selector if isinstance(selector, str) else "",
        },
    }


def apply_scale(info: ResourceInfo, current: dict[str, Any], scale: Any) -> dict[str, Any]:
    """The object with the Scale's replicas written at specReplicasPath."""
    custom: crd.CustomVersion = info.custom
    if not isinstance(scale, dict):
        raise errors.bad_request("the body must be an autoscaling/v1 Scale object")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    name = current["metadata"]["name"]
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        problem = FieldError(
            "spec.replicas", "FieldValueInvalid", "must be greater than or equal to 0", replicas
        )
        raise errors.invalid("Scale", "autoscaling", name, [problem])
    new = copy.deepcopy(current)
    crd.set_json_path(new, custom.spec_replicas_path, replicas)
    wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted_rv:
        new["metadata"]["resourceVersion"] = str(wanted_rv)
    return new
