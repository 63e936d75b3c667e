"""CronJob controller: creates a Job at each time of a cron schedule.

`decide()` is the policy, pure and table-tested. At each sync it asks which
scheduled times have passed since the last one it acted on (or since the
CronJob was created) and acts on the most recent only, as Kubernetes does:
a controller that was down for an hour starts one Job, not sixty. A time
missed by more than `startingDeadlineSeconds` is skipped. Then
`concurrencyPolicy` decides what happens if the previous Job still runs:
Allow starts another, Forbid skips this time, Replace deletes the running
one first. `suspend` stops new Jobs (running ones carry on).

Jobs are named `<cronjob>-<scheduled time in minutes since the epoch>`, so a
repeated sync can never start the same time twice: the second create meets
AlreadyExists. Finished Jobs beyond successfulJobsHistoryLimit and
failedJobsHistoryLimit are deleted, oldest first.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from api import cron
from api.meta import controller_of, namespaced_key, owner_reference, parse_time
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100


# -- actions --------------------------------------------------------------------


@dataclass(frozen=True)
class CreateJob:
    name: str
    job: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class DeleteJob:
    name: str
    reason: str  # "replace" | "history"


@dataclass(frozen=True)
class UpdateStatus:
    status: dict[str, Any]


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


Action = CreateJob | DeleteJob | UpdateStatus | Event


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None


def _rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_finished(job: dict[str, Any]) -> str | None:
    """ "Complete" or "Failed" once the Job has ended, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def job_name(cronjob: dict[str, Any], scheduled: datetime.datetime) -> str:
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(
    cronjob: dict[str, Any], scheduled: datetime.datetime, tz: datetime.tzinfo
) -> dict[str, Any]:
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_ANNOTATION] = scheduled.astimezone(tz).isoformat()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cronjob, scheduled),
            "namespace": cronjob["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_reference(cronjob)],
        },
        "spec": template.get("spec") or {},
    }


def _ref(job: dict[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "kind": "Job",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "apiVersion": "batch/v1",
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def decide(cronjob: dict[str, Any], jobs: list[dict[str, Any]], now: datetime.datetime) -> Plan:
    """What to do for `cronjob` now, given the Jobs it owns."""
    plan = Plan()
    meta, spec = cronjob["metadata"], cronjob.get("spec") or {}
    old_status = cronjob.get("status") or {}
    status = copy.deepcopy(old_status)

    # 1. Bookkeeping: which Jobs still run, which finished, the history limits.
    running = [
        j for j in jobs if not job_finished(j) and not j["metadata"].get("deletionTimestamp")
    ]
    running_names = {j["metadata"]["name"] for j in running}
    for ref in old_status.get("active") or []:
        if ref.get("name") not in running_names:
            finished = next((j for j in jobs if j["metadata"]["name"] == ref.get("name")), None)
            if finished is not None and job_finished(finished):
                plan.actions.append(
                    Event(
                        "Normal",
                        "SawCompletedJob",
                        f"Saw completed job: {ref['name']}, condition: {job_finished(finished)}",
                    )
                )
    succeeded_times = [
        t
        for j in jobs
        if job_finished(j) == "Complete"
        and (t := parse_time((j.get("status") or {}).get("completionTime")))
    ]
    if succeeded_times:
        latest = max(succeeded_times)
        known = parse_time(old_status.get("lastSuccessfulTime"))
        if known is None or latest > known:
            status["lastSuccessfulTime"] = _rfc3339(latest)
    for outcome, limit_field, default in (
        ("Complete", "successfulJobsHistoryLimit", 3),
        ("Failed", "failedJobsHistoryLimit", 1),
    ):
        done = sorted(
            (
                j
                for j in jobs
                if job_finished(j) == outcome and not j["metadata"].get("deletionTimestamp")
            ),
            key=lambda j: j["metadata"].get("creationTimestamp") or "",
        )
        limit = spec.get(limit_field, default)
        excess = len(done) - int(limit if limit is not None else default)
        for j in done[: max(excess, 0)]:
            plan.actions.append(DeleteJob(j["metadata"]["name"], "history"))

    # 2. Is a scheduled time due?
    try:
        schedule = cron.parse(str(spec.get("schedule", "")))
        tz = cron.zone(spec.get("timeZone"))
    except cron.CronError as e:
        plan.actions.append(Event("Warning", "UnparseableSchedule", f"unparseable schedule: {e}"))
        return _finish(plan, status, old_status, running)
    earliest = parse_time(old_status.get("lastScheduleTime")) or parse_time(
        meta.get("creationTimestamp")
    )
    if earliest is None:
        earliest = now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - datetime.timedelta(seconds=int(deadline)))
    due: datetime.datetime | None = None
    missed = 0
    t = cron.next_after(schedule, earliest, tz)
    while t is not None and t <= now:
        due, missed = t, missed + 1
        if missed > TOO_MANY_MISSED:
            break
        t = cron.next_after(schedule, t, tz)
    if missed > TOO_MANY_MISSED:
        # Kubernetes' wording; the most recent time is still the one acted on.
        plan.actions.append(
            Event(
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                "or check clock skew",
            )
        )
        due = _most_recent(schedule, now, tz, earliest)
    upcoming = cron.next_after(schedule, now, tz)
    if upcoming is not None:
        plan.requeue_after = max((upcoming - now).total_seconds(), 0.5)

    if due is None or spec.get("suspend"):
        return _finish(plan, status, old_status, running)
    name = job_name(cronjob, due)
    if any(j["metadata"]["name"] == name for j in jobs):
        return _finish(plan, status, old_status, running)  # this time has its Job already
    if deadline is not None and (now - due).total_seconds() > int(deadline):
        plan.actions.append(
            Event(
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {due.astimezone(tz).isoformat()}",
            )
        )
        return _finish(plan, status, old_status, running)
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy == "Forbid" and running:
        plan.actions.append(
            Event(
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
        )
        return _finish(plan, status, old_status, running)
    if policy == "Replace":
        for j in running:
            plan.actions.append(DeleteJob(j["metadata"]["name"], "replace"))
        running = []
    job = job_from_template(cronjob, due, tz)
    plan.actions.append(CreateJob(name, job))
    status["lastScheduleTime"] = _rfc3339(due)
    return _finish(plan, status, old_status, running, created=job)


def _most_recent(
    schedule: cron.Schedule,
    now: datetime.datetime,
    tz: datetime.tzinfo,
    earliest: datetime.datetime,
) -> datetime.datetime | None:
    """The last scheduled time at or before now, searched backwards a day at a time."""
    start = max(earliest, now - datetime.timedelta(days=1))
    while start >= earliest:
        t, last = cron.next_after(schedule, start, tz), None
        while t is not None and t <= now:
            last, t = t, cron.next_after(schedule, t, tz)
        if last is not None:
            return last
        start -= datetime.timedelta(days=1)
    return None


def _finish(
    plan: Plan,
    status: dict[str, Any],
    old_status: dict[str, Any],
    running: list[dict[str, Any]],
    *,
    created: dict[str, Any] | None = None,
) -> Plan:
    """Status: the running Jobs (the new one is added once created), then write if changed."""
    status["active"] = [_ref(j) for j in running]
    if not status["active"]:
        status.pop("active")
    if status != old_status or created is not None:
        plan.actions.append(UpdateStatus(status))
    return plan


# -- the shell ---------------------------------------------------------------------


class CronJobController(Controller):
    name = "cronjob-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cronjobs = ctx.informers.get("batch/v1", "CronJob")
        self.jobs = ctx.informers.get("batch/v1", "Job")
        self.cronjobs.add_handlers(
            on_add=lambda c: self.enqueue(namespaced_key(c)),
            on_update=lambda _o, c: self.enqueue(namespaced_key(c)),
        )
        self.jobs.add_handlers(
            on_add=self._job_changed,
            on_update=lambda _o, j: self._job_changed(j),
            on_delete=self._job_changed,
        )
        # The Job a reconcile just created, by CronJob uid, for the status it writes next
        # (a key is never reconciled by two workers at once).
        self._created: dict[str, dict[str, Any]] = {}

    def _job_changed(self, job: dict[str, Any]) -> None:
        ref = controller_of(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.enqueue(f"{job['metadata']['namespace']}/{ref['name']}")

    async def reconcile(self, key: str) -> Result:
        cronjob = self.cronjobs.store.get(key)
        if cronjob is None or cronjob["metadata"].get("deletionTimestamp"):
            return Result.done()
        ns, uid = cronjob["metadata"]["namespace"], cronjob["metadata"]["uid"]
        jobs = [
            j
            for j in self.jobs.store.by_index("namespace", ns)
            if (controller_of(j) or {}).get("uid") == uid
        ]
        plan = decide(cronjob, jobs, datetime.datetime.now(datetime.UTC))
        if plan.actions:
            try:
                await self.apply(
                    plan.actions,
                    cronjob,
                    decide=decide,
                    observed=f"{len(jobs)} jobs",
                    wanted=f"a job at each time of {(cronjob.get('spec') or {}).get('schedule')!r}",
                )
            finally:
                self._created.pop(uid, None)
        return Result(requeue_after=plan.requeue_after)

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            CreateJob: self._create_job,
            DeleteJob: self._delete_job,
            UpdateStatus: self._update_status,
            Event: self._event,
        }

    async def _create_job(self, action: CreateJob, step: Step) -> None:
        try:
            created = await step.api.create(action.job)
        except errors.AlreadyExists:
            step.note = "this time has its Job already"
            return
        except errors.ApiError as e:
            step.event("Warning", "FailedCreate", f"Error creating job: {e}")
            raise
        # The status written next lists it among the active Jobs (it needs its uid).
        self._created[(step.owner or {})["metadata"]["uid"]] = _ref(created)
        step.event("Normal", "SuccessfulCreate", f"Created job {action.name}")

    async def _delete_job(self, action: DeleteJob, step: Step) -> None:
        ns = (step.owner or {})["metadata"]["namespace"]
        try:
            await step.api.delete("batch/v1", "Job", ns, action.name, propagation="Background")
        except errors.NotFound:
            step.note = "already gone"
            return
        step.event("Normal", "SuccessfulDelete", f"Deleted job {action.name}")

    async def _update_status(self, action: UpdateStatus, step: Step) -> None:
        meta = (step.owner or {})["metadata"]
        status = action.status
        created = self._created.pop(meta["uid"], None)
        if created is not None:
            status = {**status, "active": [*(status.get("active") or []), created]}
        await step.api.patch(
            "batch/v1",
            "CronJob",
            meta["namespace"],
            meta["name"],
            {"status": {"active": None, **status}},
            sub="status",
        )

    async def _event(self, action: Event, step: Step) -> None:
        step.event(action.type, action.reason, action.message)
