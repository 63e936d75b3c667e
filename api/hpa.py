"""HorizontalPodAutoscaler conversion between autoscaling/v1 and autoscaling/v2.

Kubernetes stores HPAs as autoscaling/v2 and serves v1 as a view: v1's
`targetCPUUtilizationPercentage` is v2's Resource metric `cpu` with a
Utilization target. `kubectl autoscale` (1.32) posts v1; `kubectl get hpa`
reads v2. Metrics that v1 cannot express are kept, as Kubernetes keeps them,
in the `autoscaling.alpha.kubernetes.io/metrics` annotation of the v1 view, so
a v1 round trip does not lose them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
DEFAULT_CPU_UTILIZATION = 80  # what an HPA with no metrics aims for


def _is_cpu_utilization(metric: dict[str, Any]) -> bool:
    resource = metric.get("resource") or {}
    return (
        metric.get("type") == "Resource"
        and resource.get("name") == "cpu"
        and (resource.get("target") or {}).get("type") == "Utilization"
    )


def v1_to_v2(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    others = json.loads(annotations.pop(METRICS_ANNOTATION, "[]") or "[]")
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    spec = out.setdefault("spec", {})
    target = spec.pop("targetCPUUtilizationPercentage", None)
    metrics = list(others)
    if target is not None:
        metrics.insert(
            0,
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target},
                },
            },
        )
    if metrics:
        spec["metrics"] = metrics
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentCPUUtilizationPercentage", None)
        if current is not None:
            status["currentMetrics"] = [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": current}},
                }
            ]
    return out


def v2_to_v1(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    spec = out.setdefault("spec", {})
    metrics = spec.pop("metrics", None) or []
    spec.pop("behavior", None)
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    if cpu is not None:
        spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"].get("averageUtilization")
    others = [m for m in metrics if m is not cpu]
    if others:
        meta = out.setdefault("metadata", {})
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            METRICS_ANNOTATION: json.dumps(others),
        }
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentMetrics", None) or []
        status.pop("conditions", None)
        for m in current:
            resource = m.get("resource") or {}
            if m.get("type") == "Resource" and resource.get("name") == "cpu":
                value = (resource.get("current") or {}).get("averageUtilization")
                if value is not None:
                    status["currentCPUUtilizationPercentage"] = value
    return out
