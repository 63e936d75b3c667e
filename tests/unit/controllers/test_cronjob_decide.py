"""CronJob decide() and the cron parser: tables."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from api import cron
from controllers.cronjob import CreateJob, DeleteJob, Event, UpdateStatus, decide, job_name

NOW = datetime.datetime(2026, 12, 2, 3, 0, 30, tzinfo=datetime.UTC)


def ago(seconds: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cronjob(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    base = {
        "schedule": "*/1 * * * *",
        "concurrencyPolicy": "Allow",
        "suspend": False,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}},
    }
    base.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "tick",
            "namespace": "default",
            "uid": "cj-uid",
            "creationTimestamp": ago(90),
        },
        "spec": base,
        "status": status or {},
    }


def job(name: str, outcome: str | None = None, created: float = 60) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if outcome:
        status["conditions"] = [{"type": outcome, "status": "True"}]
        if outcome == "Complete":
            status["completionTime"] = ago(created - 5)
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"u-{name}",
            "creationTimestamp": ago(created),
        },
        "status": status,
    }


def of(plan: Any, kind: type) -> list[Any]:
    return [a for a in plan.actions if isinstance(a, kind)]


@pytest.mark.parametrize(
    ("text", "after", "tz", "want"),
    [
        ("*/5 * * * *", "2026-12-02T03:01:00", None, "2026-12-02T03:05:00"),
        ("@hourly", "2026-12-02T03:01:00", None, "2026-12-02T04:00:00"),
        ("@daily", "2026-12-02T03:01:00", None, "2026-12-03T00:00:00"),
        ("0 9 * * mon-fri", "2026-12-04T10:00:00", None, "2026-12-07T09:00:00"),  # Fri -> Mon
        ("0 9 * * *", "2026-12-02T03:01:00", "Europe/Berlin", "2026-12-02T08:00:00"),
        ("30 2 1 jan *", "2026-12-02T03:01:00", None, "2027-01-01T02:30:00"),
        # Both day fields restricted: either one matches (1st of the month, or a Sunday).
        ("0 0 1 * sun", "2026-12-02T03:01:00", None, "2026-12-06T00:00:00"),
    ],
)
def test_next_after(text: str, after: str, tz: str | None, want: str) -> None:
    t = datetime.datetime.fromisoformat(after).replace(tzinfo=datetime.UTC)
    got = cron.next_after(cron.parse(text), t, cron.zone(tz))
    assert got == datetime.datetime.fromisoformat(want).replace(tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("* * * *", "expected exactly 5 fields"),
        ("61 * * * *", "outside 0-59"),
        ("@fortnightly", "unrecognized descriptor"),
        ("TZ=UTC * * * * *", "use timeZone field instead"),
    ],
)
def test_bad_schedules(text: str, error: str) -> None:
    with pytest.raises(cron.CronError, match=error):
        cron.parse(text)


def test_due_time_creates_a_job_named_after_the_minute() -> None:
    plan = decide(cronjob(), [], NOW)
    [create] = of(plan, CreateJob)
    due = datetime.datetime(2026, 12, 2, 3, 0, tzinfo=datetime.UTC)
    assert create.name == job_name(cronjob(), due) == f"tick-{int(due.timestamp()) // 60}"
    assert create.job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert of(plan, UpdateStatus)[0].status["lastScheduleTime"] == "2026-12-02T03:00:00Z"
    assert plan.requeue_after == pytest.approx(30)


def test_only_the_most_recent_missed_time_runs() -> None:
    cj = cronjob()
    cj["metadata"]["creationTimestamp"] = ago(3600)
    [create] = of(decide(cj, [], NOW), CreateJob)
    assert create.job["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"
    ].startswith("2026-12-02T03:00:00")


def test_nothing_twice_and_nothing_while_suspended() -> None:
    due = datetime.datetime(2026, 12, 2, 3, 0, tzinfo=datetime.UTC)
    existing = job(job_name(cronjob(), due))
    assert of(decide(cronjob(), [existing], NOW), CreateJob) == []
    assert of(decide(cronjob(suspend=True), [], NOW), CreateJob) == []


def test_starting_deadline_skips_a_late_start() -> None:
    late = datetime.datetime(2026, 12, 2, 3, 0, 50, tzinfo=datetime.UTC)
    assert of(decide(cronjob(startingDeadlineSeconds=20), [], late), CreateJob) == []
    assert len(of(decide(cronjob(startingDeadlineSeconds=60), [], late), CreateJob)) == 1


@pytest.mark.parametrize(
    ("policy", "creates", "deletes"),
    [("Allow", 1, []), ("Forbid", 0, []), ("Replace", 1, ["tick-old"])],
)
def test_concurrency_policy(policy: str, creates: int, deletes: list[str]) -> None:
    running = job("tick-old")
    plan = decide(cronjob(concurrencyPolicy=policy), [running], NOW)
    assert len(of(plan, CreateJob)) == creates
    assert [d.name for d in of(plan, DeleteJob)] == deletes
    if policy == "Forbid":
        assert of(plan, Event)[0].reason == "JobAlreadyActive"


def test_history_limits_delete_the_oldest_finished() -> None:
    jobs = [job(f"ok{i}", "Complete", created=1000 - i) for i in range(5)] + [
        job(f"bad{i}", "Failed", created=1000 - i) for i in range(3)
    ]
    status = {"lastScheduleTime": "2026-12-02T03:00:00Z"}
    plan = decide(cronjob(status=status), jobs, NOW)
    assert [d.name for d in of(plan, DeleteJob)] == ["ok0", "ok1", "bad0", "bad1"]


def test_finished_job_leaves_active_with_an_event() -> None:
    status = {
        "lastScheduleTime": "2026-12-02T03:00:00Z",
        "active": [{"kind": "Job", "name": "tick-1", "namespace": "default"}],
    }
    plan = decide(cronjob(status=status), [job("tick-1", "Complete")], NOW)
    assert (
        Event("Normal", "SawCompletedJob", "Saw completed job: tick-1, condition: Complete")
        in plan.actions
    )
    new = of(plan, UpdateStatus)[0].status
    assert "active" not in new and new["lastSuccessfulTime"]
