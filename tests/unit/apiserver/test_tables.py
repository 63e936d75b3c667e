"""Table rows as kubectl get prints them."""

from __future__ import annotations

import datetime

import pytest

from apiserver.tables import accepts_table, human_duration, table_for

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (302, "5m2s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 600, "3h10m"),
        (30 * 3600, "30h"),
        (51 * 3600, "2d3h"),
        (10 * 86400, "10d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(datetime.timedelta(seconds=seconds)) == text


def pod(**status: object) -> dict:
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-11-24T11:55:00Z"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
        "status": {"phase": "Pending", **status},
    }


def cells(obj: dict) -> list:
    return table_for(group="", kind="Pod", objects=[obj], now=NOW)["rows"][0]["cells"]


def test_pod_columns_and_statuses() -> None:
    assert cells(pod())[:5] == ["p", "0/1", "Pending", "0", "5m"]
    waiting = pod(
        containerStatuses=[
            {
                "name": "c",
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-24T11:58:00Z"}},
            }
        ]
    )
    assert cells(waiting)[2:4] == ["CrashLoopBackOff", "3 (2m ago)"]
    oom = pod(
        containerStatuses=[
            {"name": "c", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
        ]
    )
    assert cells(oom)[2] == "OOMKilled"
    running = pod(
        phase="Running",
        podIP="10.244.0.5",
        containerStatuses=[{"name": "c", "ready": True, "state": {"running": {}}}],
    )
    assert cells(running)[:3] == ["p", "1/1", "Running"]
    assert cells(running)[5:7] == ["10.244.0.5", "n1"]
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = "2026-11-24T12:00:00Z"
    assert cells(deleting)[2] == "Terminating"
    init = pod(
        initContainerStatuses=[{"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]
    )
    init["spec"]["initContainers"] = [{"name": "i"}]
    assert cells(init)[2] == "Init:0/1"


def test_include_object_modes_and_accept() -> None:
    meta = table_for(group="", kind="Pod", objects=[pod()], now=NOW)
    assert meta["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert [c["name"] for c in meta["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert (
        "object"
        not in table_for(group="", kind="Pod", objects=[pod()], include_object="None")["rows"][0]
    )
    assert accepts_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not accepts_table("application/json")


@pytest.mark.parametrize(
    ("conditions", "unschedulable", "printed"),
    [
        ([{"type": "Ready", "status": "True"}], False, "Ready"),
        ([{"type": "Ready", "status": "False"}], False, "NotReady"),
        # a node whose kubelet stopped: the controller sets Unknown, kubectl says NotReady
        ([{"type": "Ready", "status": "Unknown"}], False, "NotReady"),
        ([], False, "Unknown"),
        ([{"type": "Ready", "status": "True"}], True, "Ready,SchedulingDisabled"),
    ],
)
def test_node_status_column(conditions: list, unschedulable: bool, printed: str) -> None:
    node = {
        "metadata": {"name": "n1", "creationTimestamp": "2026-11-24T11:55:00Z"},
        "spec": {"unschedulable": unschedulable},
        "status": {"conditions": conditions},
    }
    table = table_for(group="", kind="Node", objects=[node], now=NOW)
    assert table["rows"][0]["cells"][1] == printed
