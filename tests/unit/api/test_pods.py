"""Pod facts shared by every component: activity, readiness, availability, QoS, requests."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from api.pods import (
    get_condition,
    host_ports,
    is_active,
    is_available,
    is_ready,
    pod_requests,
    qos_class,
)

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)


def with_status(phase: str = "Running", ready: str = "", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "ns"}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-24T11:59:00Z"
    status: dict[str, Any] = {"phase": phase}
    if ready:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": ready},
        ]
    return {"metadata": meta, "spec": {}, "status": status}


@pytest.mark.parametrize(
    ("pod", "active"),
    [
        (with_status("Pending"), True),
        (with_status("Running"), True),
        (with_status("Succeeded"), False),
        (with_status("Failed"), False),
        (with_status("Running", deleting=True), False),
    ],
)
def test_is_active(pod: dict, active: bool) -> None:
    assert is_active(pod) is active


def test_conditions_and_readiness() -> None:
    pod = with_status(ready="2026-11-24T11:59:50Z")
    assert get_condition(pod, "PodScheduled") == {"type": "PodScheduled", "status": "True"}
    assert get_condition(pod, "Initialized") is None
    assert is_ready(pod)
    assert not is_ready(with_status())
    pod["status"]["conditions"][1]["status"] = "False"
    assert not is_ready(pod)


@pytest.mark.parametrize(
    ("ready", "min_ready", "available"),
    [
        ("", 0, False),  # not ready at all
        ("2026-11-24T11:59:50Z", 0, True),
        ("2026-11-24T11:59:50Z", 10, True),  # exactly minReadySeconds
        ("2026-11-24T11:59:51Z", 10, False),
        ("2026-11-24T11:00:00Z", 300, True),
    ],
)
def test_is_available(ready: str, min_ready: int, available: bool) -> None:
    assert is_available(with_status(ready=ready), min_ready, NOW) is available


def container(requests: dict | None = None, limits: dict | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "busybox", "resources": resources}


def spec_pod(*containers: dict, init: list | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers), **extra}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p"}, "spec": spec}


FULL = {"cpu": "500m", "memory": "128Mi"}


@pytest.mark.parametrize(
    ("pod", "qos"),
    [
        (spec_pod(container()), "BestEffort"),
        (spec_pod(container(), container()), "BestEffort"),
        # Only cpu and memory decide; zero amounts count as unset.
        (spec_pod(container({"ephemeral-storage": "1Gi"})), "BestEffort"),
        (spec_pod(container({"cpu": "0"})), "BestEffort"),
        (spec_pod(container(FULL, FULL)), "Guaranteed"),
        (spec_pod(container(None, FULL)), "Guaranteed"),  # requests default to limits
        (spec_pod(container({"cpu": "0.5"}, {"cpu": "500m", "memory": "128Mi"})), "Guaranteed"),
        (spec_pod(container({"cpu": "100m"}, FULL)), "Burstable"),  # request below limit
        (spec_pod(container({"cpu": "100m"})), "Burstable"),
        (spec_pod(container(None, {"memory": "128Mi"})), "Burstable"),  # no cpu limit
        (spec_pod(container(FULL, FULL), container()), "Burstable"),  # one container unbounded
        # Init containers count too.
        (spec_pod(container(FULL, FULL), init=[container()]), "Burstable"),
        (spec_pod(container(FULL, FULL), init=[container(FULL, FULL)]), "Guaranteed"),
        (spec_pod(container(), init=[container({"memory": "64Mi"})]), "Burstable"),
        # hugepages and other resources beside cpu+memory do not spoil Guaranteed.
        (
            spec_pod(container({**FULL, "hugepages-2Mi": "2Mi"}, {**FULL, "hugepages-2Mi": "2Mi"})),
            "Guaranteed",
        ),
    ],
)
def test_qos_class(pod: dict, qos: str) -> None:
    assert qos_class(pod) == qos


@pytest.mark.parametrize(
    ("pod", "requests"),
    [
        (spec_pod(container()), {}),
        (
            spec_pod(container({"cpu": "100m", "memory": "64Mi"}), container({"cpu": "1"})),
            {"cpu": 1100, "memory": 64 * 2**20},
        ),
        # An init container runs alone: the larger of it and the app containers' sum.
        (
            spec_pod(
                container({"cpu": "100m", "memory": "64Mi"}),
                init=[container({"cpu": "500m"}), container({"memory": "32Mi"})],
            ),
            {"cpu": 500, "memory": 64 * 2**20},
        ),
        # Pod overhead (RuntimeClass) is added on top.
        (
            spec_pod(container({"cpu": "250m"}), overhead={"cpu": "50m", "memory": "10Mi"}),
            {"cpu": 300, "memory": 10 * 2**20},
        ),
        (spec_pod(container({"nvidia.com/gpu": "2"})), {"nvidia.com/gpu": 2}),
    ],
)
def test_pod_requests(pod: dict, requests: dict) -> None:
    assert pod_requests(pod) == requests


def test_host_ports() -> None:
    c = container()
    c["ports"] = [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"},
        {"containerPort": 9090},  # not bound on the node
    ]
    assert host_ports(spec_pod(c)) == {("0.0.0.0", "TCP", 8080), ("127.0.0.1", "UDP", 53)}
