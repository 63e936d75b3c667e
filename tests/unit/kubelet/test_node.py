"""The node's pure parts: allocatable, --system-reserved, conditions."""

from __future__ import annotations

import pytest

from kubelet.node import allocatable, conditions, parse_reserved

CAPACITY = {"cpu": "4", "memory": "8388608Ki", "pods": "110", "ephemeral-storage": "104857600Ki"}
PRESSURE_FREE = {"MemoryPressure": False, "DiskPressure": False, "PIDPressure": False}


def test_allocatable_is_capacity_minus_system_reserved() -> None:
    reserved = parse_reserved("cpu=500m,memory=1Gi,ephemeral-storage=10Gi")
    assert allocatable(CAPACITY, reserved) == {
        "cpu": "3500m",
        "memory": "7340032Ki",
        "pods": "110",
        "ephemeral-storage": "94371840Ki",
    }
    assert allocatable(CAPACITY, parse_reserved("cpu=1"))["cpu"] == "3"
    assert allocatable(CAPACITY, {}) == CAPACITY


def test_system_reserved_must_be_pairs() -> None:
    with pytest.raises(ValueError, match="expected name=quantity"):
        parse_reserved("cpu")


def test_ready_follows_the_runtime() -> None:
    ready = conditions(PRESSURE_FREE, [], [], "T1")
    by_type = {c["type"]: c for c in ready}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["Ready"]["reason"] == "KubeletReady"
    assert by_type["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    problem = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"
    not_ready = {c["type"]: c for c in conditions(PRESSURE_FREE, [problem], ready, "T2")}
    assert not_ready["Ready"]["status"] == "False"
    assert not_ready["Ready"]["reason"] == "KubeletNotReady"
    assert not_ready["Ready"]["message"] == problem
    assert not_ready["Ready"]["lastTransitionTime"] == "T2"
    # Unchanged conditions keep their transition time; every one gets a new heartbeat.
    assert not_ready["DiskPressure"]["lastTransitionTime"] == "T1"
    assert not_ready["DiskPressure"]["lastHeartbeatTime"] == "T2"


def test_pressure_is_reported() -> None:
    hungry = {**PRESSURE_FREE, "MemoryPressure": True}
    by_type = {c["type"]: c for c in conditions(hungry, [], [], "T")}
    assert by_type["MemoryPressure"]["status"] == "True"
    assert by_type["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
