"""HorizontalPodAutoscaler decide(): tables of (HPA, observed pods and usage) -> replicas."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from api import hpa as conversion
from controllers.podautoscaler import Observed, decide

NOW = datetime.datetime(2026, 12, 2, 3, 0, 0, tzinfo=datetime.UTC)


def hpa(target: int = 50, low: int = 1, high: int = 10) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            ],
        },
        "status": {},
    }


def pod(name: str, request: str = "100m", *, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": request}}}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def observe(
    usages: list[int | None], replicas: int | None = None, ready: list[bool] | None = None
) -> Observed:
    pods = [pod(f"p{i}", ready=(ready[i] if ready else True)) for i in range(len(usages))]
    usage = {f"p{i}": {"cpu": u, "memory": 0} for i, u in enumerate(usages) if u is not None}
    return Observed(replicas if replicas is not None else len(usages), pods, usage)


@pytest.mark.parametrize(
    ("usages", "want"),
    [
        ([100, 100], 4),  # 100% of request against a 50% target: twice the pods
        ([50, 50], None),  # on target
        ([53, 54], None),  # within the 10% tolerance
        ([90, 90, 90], 6),  # 180% / 50% * 3 = 5.4 -> 6
        ([100] * 2 + [0], 4),
    ],
)
def test_cpu_utilization_to_replicas(usages: list[int], want: int | None) -> None:
    plan = decide(hpa(), observe(usages), [], NOW)
    assert plan.replicas == want
    metric = plan.status["currentMetrics"][0]["resource"]
    assert metric["name"] == "cpu" and metric["current"]["averageUtilization"] == int(
        sum(usages) * 100 / (100 * len(usages))
    )


def test_scale_up_limited_to_double_or_four_more_and_to_max() -> None:
    assert decide(hpa(high=100), observe([500] * 2), [], NOW).replicas == 6  # 2 + 4
    plan = decide(hpa(high=3), observe([500] * 2), [], NOW)
    assert plan.replicas == 3
    limited = next(c for c in plan.status["conditions"] if c["type"] == "ScalingLimited")
    assert limited["status"] == "True" and limited["reason"] == "TooManyReplicas"


def test_scale_down_waits_for_the_stabilization_window() -> None:
    recent = [(NOW - datetime.timedelta(seconds=120), 4)]
    assert decide(hpa(), observe([10] * 4), recent, NOW).replicas is None  # 4 was wanted 2 min ago
    old = [(NOW - datetime.timedelta(seconds=400), 4)]
    plan = decide(hpa(), observe([10] * 4), old, NOW)
    assert plan.replicas == 1
    assert (
        "Normal",
        "SuccessfulRescale",
        "New size: 1; reason: All metrics below target",
    ) in plan.events


def test_scale_up_event_names_the_metric() -> None:
    plan = decide(hpa(), observe([100, 100]), [], NOW)
    assert plan.events == [
        (
            "Normal",
            "SuccessfulRescale",
            "New size: 4; reason: cpu resource utilization (percentage of request) above target",
        )
    ]
    assert plan.status["desiredReplicas"] == 4 and plan.status["lastScaleTime"]


def test_unready_pods_count_as_idle_when_scaling_up() -> None:
    # Three ready pods at 200% of a 50% target would ask for 6; three more pods are still
    # starting. Counted as idle they bring the average to the target: no change.
    observed = observe([100, 100, 100, None, None, None], ready=[True] * 3 + [False] * 3)
    assert decide(hpa(), observed, [], NOW).replicas is None
    observed = observe([150, 150, None, None], ready=[True, True, False, False])
    assert decide(hpa(), observed, [], NOW).replicas == 6  # 300m of 400m = 75%: 1.5 x 4


def test_missing_request_is_a_condition_not_a_guess() -> None:
    observed = observe([100])
    del observed.pods[0]["spec"]["containers"][0]["resources"]["requests"]
    plan = decide(hpa(), observed, [], NOW)
    assert plan.replicas is None
    active = next(c for c in plan.status["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "False" and active["reason"] == "FailedGetResourceMetric"
    assert "missing request for cpu in container c of Pod p0" in active["message"]


def test_no_metrics_yet() -> None:
    plan = decide(
        hpa(),
        Observed(
            2, [pod("a"), pod("b")], {}, "the server is currently unable to handle the request"
        ),
        [],
        NOW,
    )
    assert plan.replicas is None
    assert plan.events[0][1] == "FailedGetResourceMetric"


def test_v1_v2_round_trip() -> None:
    v1 = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 50,
        },
        "status": {"currentCPUUtilizationPercentage": 20},
    }
    v2 = conversion.v1_to_v2(v1)
    assert v2["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 50,
    }
    assert conversion.v2_to_v1(v2) == v1
    v2["spec"]["metrics"].append(
        {
            "type": "Resource",
            "resource": {
                "name": "memory",
                "target": {"type": "AverageValue", "averageValue": "100Mi"},
            },
        }
    )
    assert conversion.v1_to_v2(conversion.v2_to_v1(v2))["spec"]["metrics"] == v2["spec"]["metrics"]
