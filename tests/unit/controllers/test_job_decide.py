"""Job decide(): tables of (Job, pods, time) -> plan."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controllers.job import (
    TRACKING_FINALIZER,
    CreatePod,
    DeleteJob,
    DeletePod,
    Event,
    RemoveTrackingFinalizer,
    UpdateStatus,
    backoff_delay,
    decide,
    format_indexes,
    parse_indexes,
    pod_from_template,
)

NOW = datetime.datetime(2026, 12, 2, 3, 0, 0, tzinfo=datetime.UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    base = {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "podReplacementPolicy": "TerminatingOrFailed",
        "template": {
            "metadata": {"labels": {"job-name": "pi"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "b"}]},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
        "spec": base,
        "status": status if status is not None else {"startTime": ts(100)},
    }


def pod(
    name: str,
    phase: str = "Running",
    *,
    finished_ago: float = 50,
    exit_code: int = 1,
    tracked: bool = True,
    index: int | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "creationTimestamp": ts(200),
        "ownerReferences": [{"kind": "Job", "name": "pi", "uid": "job-uid", "controller": True}],
        "finalizers": [TRACKING_FINALIZER] if tracked else [],
    }
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        meta["deletionTimestamp"] = ts(1)
    status: dict[str, Any] = {"phase": phase}
    if phase in ("Succeeded", "Failed"):
        status["containerStatuses"] = [
            {
                "name": "main",
                "state": {
                    "terminated": {
                        "exitCode": 0 if phase == "Succeeded" else exit_code,
                        "finishedAt": ts(finished_ago),
                    }
                },
            }
        ]
    return {"metadata": meta, "status": status}


def kinds(plan: Any) -> list[str]:
    return [type(a).__name__ for a in plan.actions]


def status_of(plan: Any) -> dict[str, Any]:
    return next(a.status for a in plan.actions if isinstance(a, UpdateStatus))


def test_new_job_creates_parallelism_pods_and_sets_start_time() -> None:
    plan = decide(job(status={}, parallelism=3, completions=5), [], NOW)
    assert plan.actions.count(CreatePod(None)) == 3
    assert status_of(plan)["startTime"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_never_more_pods_than_completions_left() -> None:
    status = {"startTime": ts(100), "succeeded": 4}
    plan = decide(job(status=status, parallelism=3, completions=5), [], NOW)
    assert plan.actions.count(CreatePod(None)) == 1


@pytest.mark.parametrize(
    ("step", "pods", "status", "want"),
    [
        # 1. A pod finished: its uid is recorded first, the finalizer stays.
        ("record", [pod("a", "Succeeded")], {}, {"uncounted": {"succeeded": ["uid-a"]}}),
        # 2. Recorded: now the finalizer may go; the count does not move yet.
        (
            "release",
            [pod("a", "Succeeded")],
            {"uncountedTerminatedPods": {"succeeded": ["uid-a"]}},
            {"remove": ["a"]},
        ),
        # 3. The finalizer is gone: the uid moves into succeeded.
        (
            "count",
            [pod("a", "Succeeded", tracked=False)],
            {"uncountedTerminatedPods": {"succeeded": ["uid-a"]}},
            {"succeeded": 1},
        ),
    ],
)
def test_finished_pods_are_counted_exactly_once(
    step: str, pods: list[dict[str, Any]], status: dict[str, Any], want: dict[str, Any]
) -> None:
    status = {"startTime": ts(100), **status}
    plan = decide(job(status=status, completions=2), pods, NOW)
    if "uncounted" in want:
        assert status_of(plan)["uncountedTerminatedPods"] == want["uncounted"]
        assert not any(isinstance(a, RemoveTrackingFinalizer) for a in plan.actions)
    if "remove" in want:
        assert [a.name for a in plan.actions if isinstance(a, RemoveTrackingFinalizer)] == want[
            "remove"
        ]
    if "succeeded" in want:
        s = status_of(plan)
        assert s["succeeded"] == want["succeeded"] and not s["uncountedTerminatedPods"]


def test_success_sets_success_criteria_met_then_complete() -> None:
    done = pod("a", "Succeeded", tracked=False)
    plan = decide(job(status={"startTime": ts(100), "succeeded": 1}), [done], NOW)
    conditions = {c["type"]: c for c in status_of(plan)["conditions"]}
    assert conditions["SuccessCriteriaMet"]["reason"] == "CompletionsReached"
    assert conditions["Complete"]["message"] == "Reached expected number of succeeded pods"
    assert status_of(plan)["completionTime"]
    assert Event("Normal", "Completed", "Job completed") in plan.actions


def test_complete_waits_for_pods_still_being_counted() -> None:
    plan = decide(job(status={"startTime": ts(100)}), [pod("a", "Succeeded")], NOW)
    types = [c["type"] for c in status_of(plan)["conditions"]]
    assert types == ["SuccessCriteriaMet"]  # Complete only once the count is settled


@pytest.mark.parametrize(
    ("failures", "finished_ago", "creates", "wake"),
    [
        (1, 5, False, 5.0),  # 10 s after the first failure: 5 s left
        (1, 11, True, None),
        (2, 15, False, 5.0),  # 20 s after the second
        (3, 41, True, None),  # 40 s after the third
        (10, 300, False, 60.0),  # capped at 6 minutes
    ],
)
def test_exponential_backoff_between_failures(
    failures: int, finished_ago: float, creates: bool, wake: float | None
) -> None:
    pods = [
        pod(f"f{i}", "Failed", finished_ago=finished_ago + (failures - 1 - i) * 1000, tracked=False)
        for i in range(failures)
    ]
    status = {"startTime": ts(100000), "failed": failures}
    plan = decide(job(status=status, backoffLimit=20), pods, NOW)
    assert (CreatePod(None) in plan.actions) is creates
    if wake is not None:
        assert plan.requeue_after == pytest.approx(wake, abs=0.01)


def test_backoff_delay_doubles_to_six_minutes() -> None:
    assert [backoff_delay(n) for n in (0, 1, 2, 3, 6, 7, 20)] == [0, 10, 20, 40, 320, 360, 360]


def test_backoff_limit_exceeded_fails_the_job() -> None:
    pods = [pod(f"f{i}", "Failed", tracked=False) for i in range(3)] + [pod("r")]
    plan = decide(job(status={"startTime": ts(100), "failed": 3}, backoffLimit=2), pods, NOW)
    conditions = {c["type"]: c for c in status_of(plan)["conditions"]}
    assert conditions["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert "Failed" not in conditions  # the running pod must stop first
    assert DeletePod("r", "uid-r") in plan.actions
    assert (
        Event("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        in plan.actions
    )
    # Next round: the pod is gone, so the Job is Failed.
    failing = job(status=status_of(plan), backoffLimit=2)
    plan = decide(failing, pods[:3], NOW)
    assert {c["type"] for c in status_of(plan)["conditions"]} == {"FailureTarget", "Failed"}


def test_active_deadline() -> None:
    plan = decide(job(status={"startTime": ts(70)}, activeDeadlineSeconds=60), [pod("r")], NOW)
    conditions = {c["type"]: c for c in status_of(plan)["conditions"]}
    assert conditions["FailureTarget"]["reason"] == "DeadlineExceeded"
    assert conditions["FailureTarget"]["message"] == "Job was active longer than specified deadline"
    plan = decide(job(status={"startTime": ts(50)}, activeDeadlineSeconds=60), [pod("r")], NOW)
    assert plan.requeue_after == pytest.approx(10)


def test_indexed_job_creates_missing_indexes_and_reports_completed() -> None:
    pods = [pod("a", "Succeeded", index=0, tracked=False), pod("b", index=2)]
    plan = decide(
        job(
            status={"startTime": ts(10), "succeeded": 1},
            completionMode="Indexed",
            completions=4,
            parallelism=3,
        ),
        pods,
        NOW,
    )
    assert [a for a in plan.actions if isinstance(a, CreatePod)] == [CreatePod(1), CreatePod(3)]
    assert status_of(plan)["completedIndexes"] == "0"


def test_indexed_pod_knows_its_index() -> None:
    p = pod_from_template(job(completionMode="Indexed", completions=3), 2)
    assert p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert p["metadata"]["generateName"] == "pi-2-"
    assert p["spec"]["hostname"] == "pi-2"
    env = p["spec"]["containers"][0]["env"][-1]
    assert env["name"] == "JOB_COMPLETION_INDEX"
    assert TRACKING_FINALIZER in p["metadata"]["finalizers"]


def test_index_ranges() -> None:
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert parse_indexes("0-2,4,6-7") == {0, 1, 2, 4, 6, 7}


@pytest.mark.parametrize(
    ("rule", "exit_code", "want"),
    [
        ({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}, 42, "fail"),
        ({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}, 1, "count"),
        ({"action": "Ignore", "onExitCodes": {"operator": "In", "values": [137]}}, 137, "ignore"),
        ({"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1]}}, 2, "fail"),
    ],
)
def test_pod_failure_policy(rule: dict[str, Any], exit_code: int, want: str) -> None:
    spec = {"podFailurePolicy": {"rules": [rule]}, "podReplacementPolicy": "Failed"}
    plan = decide(job(**spec), [pod("a", "Failed", exit_code=exit_code)], NOW)
    status = status_of(plan) if any(isinstance(a, UpdateStatus) for a in plan.actions) else {}
    if want == "ignore":
        assert RemoveTrackingFinalizer("a") in plan.actions
        assert not (status.get("uncountedTerminatedPods") or {}).get("failed")
    elif want == "fail":
        target = next(c for c in status["conditions"] if c["type"] == "FailureTarget")
        assert target["reason"] == "PodFailurePolicy"
        assert target["message"] == (
            f"Container main for pod default/a failed with exit code {exit_code} "
            "matching FailJob rule at index 0"
        )
    else:
        assert status["uncountedTerminatedPods"] == {"failed": ["uid-a"]}
        assert not any(c["type"] == "FailureTarget" for c in status.get("conditions") or [])


def test_suspend_deletes_active_pods_and_says_so() -> None:
    plan = decide(job(suspend=True), [pod("r")], NOW)
    assert DeletePod("r", "uid-r") in plan.actions
    assert Event("Normal", "Suspended", "Job suspended") in plan.actions


def test_ttl_after_finished() -> None:
    finished = {
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": ts(30)}]
    }
    assert decide(job(status=finished, ttlSecondsAfterFinished=20), [], NOW).actions == [
        DeleteJob()
    ]
    plan = decide(job(status=finished, ttlSecondsAfterFinished=100), [], NOW)
    assert plan.actions == [] and plan.requeue_after == pytest.approx(70)


def test_work_queue_job_finishes_when_one_succeeded_and_none_runs() -> None:
    spec = {"completions": None, "parallelism": 2}
    plan = decide(job(status={"startTime": ts(5)}, **spec), [], NOW)
    assert plan.actions.count(CreatePod(None)) == 2
    done = pod("a", "Succeeded", tracked=False)
    plan = decide(job(status={"startTime": ts(5), "succeeded": 1}, **spec), [done, pod("b")], NOW)
    assert not any(isinstance(a, CreatePod) for a in plan.actions)


def test_ignored_failure_is_replaced_at_once() -> None:
    rule = {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [137]}}
    spec = {"podFailurePolicy": {"rules": [rule]}, "podReplacementPolicy": "Failed"}
    evicted = pod("a", "Failed", exit_code=137, finished_ago=1, tracked=False)
    plan = decide(job(**spec), [evicted], NOW)
    assert CreatePod(None) in plan.actions  # no back-off for an ignored failure
