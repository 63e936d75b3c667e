"""What a simulated node does about each pod, and the status it writes."""

from __future__ import annotations

from typing import Any

import pytest

from simnode import sim

NODE = {"metadata": {"name": "sim-0001", "annotations": {}}}
SILENT = {"metadata": {"name": "sim-0001", "annotations": {sim.ANNOTATION: "silent"}}}
FAILING = {"metadata": {"name": "sim-0001", "annotations": {sim.ANNOTATION: "fail"}}}


def pod(
    phase: str = "Pending",
    *,
    ready: bool = False,
    deleting: bool = False,
    annotations: dict | None = None,
    restart: str = "Always",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "p",
        "namespace": "default",
        "uid": "u1",
        "annotations": annotations or {},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase}
    if phase == "Running":
        status["containerStatuses"] = [{"name": "c", "ready": ready}]
    return {
        "metadata": meta,
        "spec": {
            "nodeName": "sim-0001",
            "restartPolicy": restart,
            "containers": [{"name": "c", "image": "busybox"}],
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("p", "node", "age", "want"),
    [
        (pod(), NODE, 0.1, ""),  # still "starting"
        (pod(), NODE, 2.0, "run"),
        (pod("Running", ready=True), NODE, 5.0, ""),  # already reported
        (pod("Running", ready=False), NODE, 5.0, "run"),
        (pod(deleting=True), NODE, 0.0, "confirm-delete"),
        (pod(), SILENT, 5.0, ""),  # a silent node says nothing
        (pod(deleting=True), SILENT, 5.0, ""),
        (pod(), None, 5.0, ""),  # not one of ours
        (pod(), FAILING, 5.0, "crash"),
        (pod(restart="Never"), FAILING, 5.0, "fail"),
        (pod(annotations={sim.ANNOTATION: "fail"}), NODE, 5.0, "crash"),
        (pod("Failed"), NODE, 5.0, ""),
        (pod("Succeeded"), NODE, 5.0, ""),
    ],
)
def test_decide(p: dict, node: dict | None, age: float, want: str) -> None:
    assert sim.decide(p, node, age, delay=1.0) == want


def test_running_status_is_ready_with_every_container() -> None:
    status = sim.running_status(
        pod(),
        host_ip="172.31.0.1",
        ip="10.244.5.2",
        now="2026-01-01T00:00:01Z",
        started="2026-01-01T00:00:00Z",
    )
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.244.5.2" and status["hostIP"] == "172.31.0.1"
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds["Ready"] == conds["ContainersReady"] == "True"
    assert [c["name"] for c in status["containerStatuses"]] == ["c"]
    assert status["containerStatuses"][0]["state"]["running"]


def test_crash_counts_restarts_and_is_never_ready() -> None:
    first = sim.failed_status(pod(), host_ip="h", ip="i", now="t", crash=True)
    again = sim.failed_status({**pod(), "status": first}, host_ip="h", ip="i", now="t", crash=True)
    c = again["containerStatuses"][0]
    assert c["restartCount"] == 2 and c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert {x["type"]: x["status"] for x in again["conditions"]}["Ready"] == "False"
    assert sim.failed_status(pod(), host_ip="h", ip="i", now="t", crash=False)["phase"] == "Failed"


def test_pod_addresses_skip_network_and_bridge() -> None:
    assert sim.pod_ip("10.244.3.0/24", 0) == "10.244.3.2"
    assert sim.pod_ip("10.244.3.0/24", 1) == "10.244.3.3"


def test_node_is_registered_ready_with_capacity() -> None:
    n = sim.node_object("sim-0001", "172.31.0.1", cpu="8", memory="32Gi", pods="110")
    assert n["status"]["capacity"]["cpu"] == "8"
    assert {"type": "InternalIP", "address": "172.31.0.1"} in n["status"]["addresses"]
    assert sim.is_ready({"status": {"conditions": sim.node_conditions("t")}})
