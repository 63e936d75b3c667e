"""The one shell (client/actions.py), the trace ring and the loop control's rules."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from client import errors
from client.actions import Step, apply, describe
from client.loopcontrol import applies, parse_duration
from client.trace import MAX_BYTES, Tracer, current_reconcile, matches


class FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, ...]] = []

    async def delete(self, v: str, kind: str, ns: str, name: str, **_: Any) -> dict:
        self.calls.append(("delete", kind, name))
        if self.fail:
            raise errors.Conflict(409, "Conflict", "stale")
        return {}

    async def patch(self, v: str, kind: str, ns: str, name: str, body: Any, **kw: Any) -> dict:
        self.calls.append(("patch", kind, name, kw.get("sub", "")))
        return {}

    async def create(self, obj: dict[str, Any], **_: Any) -> dict:
        self.calls.append(("create", obj["kind"]))
        return {**obj, "metadata": {**obj["metadata"], "name": "made-1"}}


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    async def event(self, obj: dict[str, Any], etype: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], etype, reason, message))


@dataclass(frozen=True)
class Remove:
    name: str


@dataclass(frozen=True)
class Label:
    name: str


@dataclass(frozen=True)
class WriteStatus:
    status: dict[str, Any]


OWNER = {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "owner", "namespace": "ns"}}


async def remove(action: Remove, step: Step) -> None:
    await step.api.delete("v1", "Pod", "ns", action.name)
    step.event("Normal", "Removed", f"Removed {action.name}")


async def label(action: Label, step: Step) -> None:
    await step.api.patch("v1", "Pod", "ns", action.name, {"metadata": {"labels": {"a": "b"}}})


async def write_status(action: WriteStatus, step: Step) -> None:
    await step.api.patch("v1", "Thing", "ns", "owner", {"status": action.status}, sub="status")


HANDLERS = {Remove: remove, Label: label, WriteStatus: write_status}


def run(actions: list[Any], *, fail: bool = False) -> tuple[FakeClient, FakeRecorder, Tracer]:
    client, recorder = FakeClient(fail), FakeRecorder()
    tracer = Tracer(None, "test", enabled=True)

    async def go() -> None:
        await apply(
            actions,
            client=client,  # type: ignore[arg-type]
            recorder=recorder,  # type: ignore[arg-type]
            handlers=HANDLERS,
            owner=OWNER,
            tracer=tracer,
            controller="thing",
            decide=describe,
            observed="o",
            wanted="w",
        )

    if fail:
        with pytest.raises(errors.Conflict):
            asyncio.run(go())
    else:
        asyncio.run(go())
    return client, recorder, tracer


@pytest.mark.parametrize(
    ("actions", "events"),
    [
        # the handler's own Event
        ([Remove("a")], [("owner", "Normal", "Removed", "Removed a")]),
        # a change without an Event of its own gets one named after the action
        ([Label("b")], [("owner", "Normal", "Label", "Label(name='b')")]),
        # a status write is not a change worth an Event (Kubernetes records none)
        ([WriteStatus({"replicas": 1})], []),
        (
            [Remove("a"), Label("b")],
            [
                ("owner", "Normal", "Removed", "Removed a"),
                ("owner", "Normal", "Label", "Label(name='b')"),
            ],
        ),
    ],
)
def test_every_change_gets_an_event(actions: list[Any], events: list[tuple[str, ...]]) -> None:
    _, recorder, _ = run(actions)
    assert recorder.events == events


def test_the_trace_record_names_actions_calls_and_the_decider() -> None:
    _, _, tracer = run([Remove("a"), WriteStatus({"replicas": 1})])
    [record] = list(tracer.records)
    assert record["decide"] == "client.actions:describe"
    assert (record["component"], record["controller"]) == ("test", "thing")
    assert (record["kind"], record["namespace"], record["name"]) == ("Thing", "ns", "owner")
    assert [a["action"] for a in record["actions"]] == [
        "Remove(name='a')",
        "WriteStatus(status=<{replicas}>)",
    ]
    assert record["actions"][0]["calls"] == ["DELETE v1 Pod ns/a"]
    assert record["actions"][1]["calls"] == ["PATCH v1 Thing ns/owner (status)"]
    assert record["outcome"] == "done"
    assert tracer.counts == {"thing": {"acted": 1, "noop": 0}}


def test_a_failed_action_ends_the_pass_and_is_recorded() -> None:
    client, _, tracer = run([Remove("a"), Label("b")], fail=True)
    assert client.calls == [("delete", "Pod", "a")]  # Label never ran
    [record] = list(tracer.records)
    assert record["outcome"].startswith("error: stale")
    assert record["actions"][0]["error"] == "stale"


def test_inside_a_worker_the_record_waits_for_the_outcome() -> None:
    tracer = Tracer(None, "test", enabled=True)
    begun: list[Any] = []

    async def go() -> None:
        current_reconcile.set(begun)
        await apply(
            [Label("x")],
            client=FakeClient(),  # type: ignore[arg-type]
            recorder=None,
            handlers=HANDLERS,
            owner=OWNER,
            tracer=tracer,
            controller="thing",
        )

    asyncio.run(go())
    assert len(begun) == 1 and not tracer.records  # the worker finishes it


def test_noop_reconciles_are_counted_not_kept() -> None:
    tracer = Tracer(None, "test", enabled=True)
    tracer.finish(tracer.begin("thing", OWNER))
    tracer.count_noop("thing")
    assert not tracer.records
    assert tracer.counts == {"thing": {"acted": 0, "noop": 2}}
    verbose = Tracer(None, "test", enabled=True, verbose=True)
    verbose.finish(verbose.begin("thing", OWNER))
    assert len(verbose.records) == 1


def test_the_ring_and_its_configmap_stay_bounded() -> None:
    tracer = Tracer(None, "test", capacity=50, enabled=True)
    for i in range(500):
        record = tracer.begin("thing", OWNER, observed="x" * 20_000)
        record.actions.append({"action": f"A{i}", "calls": []})
        tracer.finish(record)
    assert len(tracer.records) == 50
    assert tracer.records[-1]["seq"] == 500
    body = tracer.body()
    assert len(body["data"]["records"]) <= MAX_BYTES
    kept = json.loads(body["data"]["records"])
    assert kept and kept[-1]["seq"] == 500  # the newest survive
    assert body["metadata"] == {
        "name": "skiff-trace-test",
        "namespace": "kube-system",
        "labels": {"skiff.io/trace": "true", "skiff.io/trace-shard": "head"},
    }


@pytest.mark.parametrize(
    ("record", "filters", "expected"),
    [
        ({"kind": "Pod", "name": "x", "namespace": "a"}, {"kind": "pod", "name": "x"}, True),
        ({"kind": "Pod", "name": "x", "namespace": "a"}, {"kind": "Deployment"}, False),
        ({"component": "scheduler", "controller": "scheduler"}, {"component": "scheduler"}, True),
        (
            {"component": "controller-manager", "controller": "replicaset"},
            {"component": "replicaset"},
            True,
        ),
        ({"namespace": "a"}, {"namespace": "b"}, False),
        ({"namespace": ""}, {"namespace": "b"}, True),  # cluster-scoped objects show too
    ],
)
def test_trace_filters(record: dict[str, Any], filters: dict[str, str], expected: bool) -> None:
    assert matches(record, **filters) is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), ("1.5", 1.5), ("0s", 0.0), ("soon", 0.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("only", "component", "controller", "expected"),
    [
        ("", "controller-manager", "replicaset", True),
        ("replicaset", "controller-manager", "replicaset", True),
        ("replicaset", "controller-manager", "deployment", False),
        ("scheduler", "scheduler", "scheduler", True),
        ("kubelet", "kubelet-node1", "pods", True),
        ("controller-manager", "controller-manager", "endpoints", True),
        ("deployment, replicaset", "controller-manager", "replicaset", True),
    ],
)
def test_only_selects_loops(only: str, component: str, controller: str, expected: bool) -> None:
    assert applies({"only": only}, component, controller) is expected
