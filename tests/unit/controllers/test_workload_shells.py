"""Job, CronJob, DaemonSet, StatefulSet, HPA and the garbage collector on the one shell.

Each controller's actions go through `Controller.apply` (client/actions.py): a
handler for every action its decide can return, the Event Kubernetes records
for it (none for bookkeeping), a trace entry, and the loop gate before each.
The ControllerRevision decisions (controllers/history.py) and the HPA's
actions are pure and tested here by tables.
"""

from __future__ import annotations

import asyncio
import datetime
import typing
from types import ModuleType
from typing import Any

import pytest

from client import errors
from client.controller import Context, Informers
from client.trace import Tracer
from controllers import (
    cronjob,
    daemonset,
    garbagecollector,
    history,
    job,
    podautoscaler,
    statefulset,
)

NOW = datetime.datetime(2026, 12, 2, 6, 0, 0, tzinfo=datetime.UTC)


class FakeClient:
    """The write verbs a handler uses, noted; a created object gets a name and uid."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.missing: set[str] = set()  # names whose delete answers NotFound

    async def create(self, obj: dict[str, Any], **_: Any) -> dict[str, Any]:
        meta = obj["metadata"]
        name = meta.get("name") or meta.get("generateName", "x-") + "abcde"
        self.calls.append(("create", obj["kind"], name))
        return {**obj, "metadata": {**meta, "name": name, "uid": f"uid-{name}"}}

    async def delete(self, v: str, kind: str, ns: str, name: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(("delete", kind, name, kw.get("propagation", "")))
        if name in self.missing:
            raise errors.NotFound(404, "NotFound", f"{name} not found")
        return {}

    async def patch(self, v: str, kind: str, ns: str, name: str, body: Any, **kw: Any) -> dict:
        self.calls.append(("patch", kind, name, kw.get("sub", ""), body))
        return {}

    async def update(self, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        self.calls.append(("update", obj["kind"], obj["metadata"]["name"], kw.get("sub", "")))
        return obj

    async def get(self, v: str, kind: str, ns: str, name: str, **_: Any) -> dict[str, Any]:
        return {
            "apiVersion": v,
            "kind": kind,
            "metadata": {"name": name, "namespace": ns, "ownerReferences": []},
        }


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    async def event(self, obj: dict[str, Any], etype: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], etype, reason, message))


class FakeLoop:
    """Loop control that lets everything through, noting what waited at the gate."""

    def __init__(self) -> None:
        self.gated: list[tuple[str, str]] = []

    def slow_for(self, controller: str) -> float:
        return 0.0

    async def gate(self, controller: str, text: str) -> None:
        self.gated.append((controller, text))


def context() -> tuple[Context, FakeClient, FakeRecorder, FakeLoop, Tracer]:
    client, recorder, loop = FakeClient(), FakeRecorder(), FakeLoop()
    tracer = Tracer(None, "test", enabled=True)
    ctx = Context(
        client=client,  # type: ignore[arg-type]
        informers=Informers(client),  # type: ignore[arg-type]
        recorder=recorder,  # type: ignore[arg-type]
        tracer=tracer,
        loop=loop,  # type: ignore[arg-type]
    )
    return ctx, client, recorder, loop, tracer


def reasons(recorder: FakeRecorder) -> list[str]:
    return [e[2] for e in recorder.events]


@pytest.mark.parametrize(
    ("module", "controller_class"),
    [
        (job, job.JobController),
        (cronjob, cronjob.CronJobController),
        (daemonset, daemonset.DaemonSetController),
        (statefulset, statefulset.StatefulSetController),
        (podautoscaler, podautoscaler.HorizontalPodAutoscalerController),
        (history, daemonset.DaemonSetController),
        (history, statefulset.StatefulSetController),
    ],
)
def test_every_action_decide_returns_has_a_handler(
    module: ModuleType, controller_class: type
) -> None:
    ctx, *_ = context()
    controller = controller_class(ctx)
    assert set(typing.get_args(module.Action)) <= set(controller.handlers)


def test_the_garbage_collector_handles_every_action_it_decides() -> None:
    ctx, *_ = context()
    handlers = garbagecollector.GarbageCollector(ctx).handlers
    wanted = {garbagecollector.DeleteDependent, garbagecollector.Disown}
    assert wanted | {garbagecollector.RemoveFinalizer} <= set(handlers)


JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
    "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    "status": {},
}


def test_job_actions_record_kubernetes_events_and_pass_the_gate() -> None:
    ctx, client, recorder, loop, tracer = context()
    controller = job.JobController(ctx)
    controller.pods.store.put(
        {
            "metadata": {
                "name": "pi-done",
                "namespace": "default",
                "finalizers": [job.TRACKING_FINALIZER],
            }
        }
    )
    actions = [
        job.UpdateStatus({"active": 1}),
        job.CreatePod(None),
        job.DeletePod("pi-old", "u1"),
        job.RemoveTrackingFinalizer("pi-done"),
        job.Event("Normal", "Completed", "Job completed"),
    ]
    asyncio.run(controller.apply(actions, JOB, decide=job.decide))
    # The tracking finalizer is bookkeeping: no Event, but the trace shows the patch.
    assert reasons(recorder) == ["SuccessfulCreate", "SuccessfulDelete", "Completed"]
    assert ("create", "Pod", "pi-abcde") in client.calls
    assert [g[0] for g in loop.gated] == ["job"] * len(actions)
    (record,) = tracer.records
    assert record["decide"] == "controllers.job:decide"
    finalizer = record["actions"][3]
    assert finalizer["action"].startswith("RemoveTrackingFinalizer")
    assert finalizer["calls"] == ["PATCH v1 Pod default/pi-done"]


def test_a_pod_already_gone_is_no_event() -> None:
    ctx, client, recorder, *_ = context()
    client.missing.add("pi-gone")
    controller = job.JobController(ctx)
    asyncio.run(controller.apply([job.DeletePod("pi-gone", "u")], JOB))
    assert reasons(recorder) == []


CRONJOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid"},
    "spec": {"schedule": "* * * * *"},
}


def test_cronjob_status_lists_the_job_it_just_created() -> None:
    ctx, client, recorder, *_ = context()
    controller = cronjob.CronJobController(ctx)
    new = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "tick-100", "namespace": "default"},
    }
    actions = [
        cronjob.Event(
            "Normal", "SawCompletedJob", "Saw completed job: tick-99, condition: Complete"
        ),
        cronjob.DeleteJob("tick-90", "history"),
        cronjob.CreateJob("tick-100", new),
        cronjob.UpdateStatus({"lastScheduleTime": "2026-12-02T06:00:00Z"}),
    ]
    asyncio.run(controller.apply(actions, CRONJOB, decide=cronjob.decide))
    assert reasons(recorder) == ["SawCompletedJob", "SuccessfulDelete", "SuccessfulCreate"]
    status = next(c for c in client.calls if c[0] == "patch")[4]["status"]
    assert [ref["name"] for ref in status["active"]] == ["tick-100"]
    assert status["active"][0]["uid"] == "uid-tick-100"
    assert controller._created == {}  # nothing left over for the next reconcile


def test_daemonset_revisions_are_quiet_its_pods_are_not() -> None:
    ctx, client, recorder, loop, _ = context()
    controller = daemonset.DaemonSetController(ctx)
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    current = history.plan_current(ds, [])
    actions = [
        history.CreateRevision(current.name, current.create or {}),
        daemonset.CreatePod("node-1", current.hash),
        daemonset.DeletePod("agent-x", "u", why="Found failed daemon pod agent-x on node node-2"),
        history.DeleteRevision("agent-old"),
    ]
    asyncio.run(controller.apply(actions, ds, decide=daemonset.decide))
    assert reasons(recorder) == ["SuccessfulCreate", "FailedDaemonPod", "SuccessfulDelete"]
    assert ("delete", "ControllerRevision", "agent-old", "") in client.calls
    assert len(loop.gated) == len(actions)


@pytest.mark.parametrize(
    ("revisions", "live", "limit", "before", "after"),
    [
        # No revision yet: store the current one; nothing to prune.
        ([], set(), 10, ["CreateRevision"], []),
        # The current template is revision 1 and the newest: nothing to write.
        (["same:1"], set(), 10, [], []),
        # An undo back to an old template: renumber it as the newest.
        (["same:1", "other:2"], set(), 10, ["RenumberRevision"], []),
        # Old revisions beyond the limit go, oldest first; a live one stays.
        (
            ["a:1", "b:2", "c:3", "same:4"],
            {"ds-b"},
            1,
            [],
            ["DeleteRevision(name='ds-a')"],
        ),
    ],
)
def test_history_decide(
    revisions: list[str], live: set[str], limit: int, before: list[str], after: list[str]
) -> None:
    owner = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "ds", "namespace": "ns", "uid": "u"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }
    stored = []
    for text in revisions:
        tag, number = text.split(":")
        data = history.revision_data(owner)
        if tag != "same":
            data = {"spec": {"template": {"spec": {"tag": tag}}}}
        stored.append({"metadata": {"name": f"ds-{tag}"}, "data": data, "revision": int(number)})
    current = history.plan_current(owner, stored)
    got_before, got_after = history.decide(current, stored, live, limit=limit)
    assert [type(a).__name__ for a in got_before] == before
    shown = [
        f"DeleteRevision(name={a.name!r})" if isinstance(a, history.DeleteRevision) else a
        for a in got_after
    ]
    assert shown == after


def test_statefulset_claim_owner_is_quiet_and_a_failed_pod_is_recreated_loudly() -> None:
    ctx, _client, recorder, *_ = context()
    controller = statefulset.StatefulSetController(ctx)
    controller.claims.store.put(
        {"metadata": {"name": "data-web-1", "namespace": "default", "ownerReferences": []}}
    )
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid"},
    }
    actions = [
        statefulset.ClaimOwnedByPod("data-web-1", "web-1", "pod-uid"),
        statefulset.DeletePod("web-0", "u0", "failed"),
    ]
    asyncio.run(controller.apply(actions, sts))
    assert reasons(recorder) == ["RecreatingFailedPod", "SuccessfulDelete"]


HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "default", "generation": 1},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50},
                },
            }
        ],
    },
    "status": {},
}


def hpa_pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


@pytest.mark.parametrize(
    ("usage", "error", "expected"),
    [
        (100, "", ["Rescale", "UpdateStatus"]),  # twice the target: scale up, then status
        (50, "", ["UpdateStatus"]),  # on target: the first status, no rescale
        (None, "no metrics yet", ["Event", "UpdateStatus"]),  # FailedGetResourceMetric
    ],
)
def test_hpa_decide_actions(usage: int | None, error: str, expected: list[str]) -> None:
    pods = [hpa_pod("p0"), hpa_pod("p1")]
    usages = {} if usage is None else {p["metadata"]["name"]: {"cpu": usage} for p in pods}
    observed = podautoscaler.Observed(2, pods, usages, error)
    plan = podautoscaler.decide(HPA, observed, [], NOW)
    assert [type(a).__name__ for a in plan.actions] == expected
    if "Rescale" in expected:
        assert plan.actions[0] == podautoscaler.Rescale(
            4, "New size: 4; reason: cpu resource utilization (percentage of request) above target"
        )
    # The same observation again, with the status it wrote: nothing to do.
    settled = {**HPA, "status": plan.status}
    again = podautoscaler.decide(settled, podautoscaler.Observed(2, pods, usages, error), [], NOW)
    if usage == 50:
        assert again.actions == []


def test_hpa_rescale_records_successful_rescale() -> None:
    ctx, client, recorder, *_ = context()
    controller = podautoscaler.HorizontalPodAutoscalerController(ctx)
    action = podautoscaler.Rescale(4, "New size: 4; reason: cpu above target")
    asyncio.run(controller.apply([action], HPA))
    assert recorder.events == [
        ("web", "Normal", "SuccessfulRescale", "New size: 4; reason: cpu above target")
    ]
    assert client.calls[0][:4] == ("patch", "Deployment", "web", "scale")


def test_the_garbage_collector_reports_what_it_deletes_on_the_dependent() -> None:
    ctx, client, recorder, loop, tracer = context()
    gc = garbagecollector.GarbageCollector(ctx)
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "uid": "rs",
            "deletionTimestamp": "2026-12-02T06:00:00Z",
            "finalizers": ["foregroundDeletion"],
        },
    }
    dependent = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1-a",
            "namespace": "default",
            "uid": "p",
            "ownerReferences": [{"uid": "rs", "blockOwnerDeletion": False}],
        },
    }
    actions = garbagecollector.decide_owner(owner, [dependent])
    asyncio.run(gc.apply(list(actions), owner, decide=garbagecollector.decide_owner))
    assert [(e[0], e[2]) for e in recorder.events] == [
        ("web-1-a", "GarbageCollected"),
        ("web-1", "FinalizerRemoved"),
    ]
    assert ("delete", "Pod", "web-1-a", "Foreground") in client.calls
    assert {g[0] for g in loop.gated} == {"garbage-collector"}
    assert tracer.records[0]["decide"] == "controllers.garbagecollector:decide_owner"


def test_a_trace_entry_keeps_the_first_calls_of_a_big_action_and_counts_the_rest() -> None:
    """A ReplicaSet's CreatePods of 500 is 500 POSTs: the ring stays small to write."""
    from dataclasses import dataclass

    from client.actions import KEPT_PER_ACTION, Step, apply

    @dataclass(frozen=True)
    class MakeMany:
        count: int

    async def make_many(action: MakeMany, step: Step) -> None:
        for i in range(action.count):
            await step.api.delete("v1", "Pod", "default", f"p{i}")
            step.event("Normal", "SuccessfulDelete", f"Deleted pod: p{i}")

    _ctx, client, recorder, _, tracer = context()
    asyncio.run(
        apply(
            [MakeMany(KEPT_PER_ACTION + 5)],
            client=client,  # type: ignore[arg-type]
            recorder=recorder,  # type: ignore[arg-type]
            handlers={MakeMany: make_many},
            owner=JOB,
            tracer=tracer,
        )
    )
    (entry,) = tracer.records[0]["actions"]
    assert entry["calls"][0] == "DELETE v1 Pod default/p0"
    assert entry["calls"][-1] == "... and 5 more"
    assert len(entry["calls"]) == KEPT_PER_ACTION + 1
    assert entry["events"][-1] == "... and 5 more"
    assert len(recorder.events) == KEPT_PER_ACTION + 5  # every Event is still recorded
