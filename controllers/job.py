"""Job controller: runs a Job's pods until enough of them succeed, or the Job fails.

`decide()` is the policy, pure and table-tested: from the Job, its pods and
the time it returns a `Plan` — pods to create (with their completion index
for Indexed Jobs), pods to delete, the new status, and when to look again.
`JobController` gathers the inputs from the informer caches and carries the
plan out.

How a finished pod is counted exactly once, as Kubernetes does it: every pod
is created with the `batch.kubernetes.io/job-tracking` finalizer, so it cannot
vanish before it is counted. When a pod finishes, its uid first goes into
`status.uncountedTerminatedPods`; only after that status is stored is the
finalizer removed; once the pod no longer carries it, the uid moves into
`status.succeeded` / `status.failed`. A crash between any two steps leaves
enough on record to finish the count without counting twice.

Failures are retried with exponential back-off — a new pod waits 10 s after
the first failure, 20 s after the second, doubling up to 6 minutes — until
more than `backoffLimit` pods have failed. The end is two conditions, as in
Kubernetes 1.32: first `SuccessCriteriaMet` (or `FailureTarget`) while the
remaining pods are stopped, then `Complete` (or `Failed`) once none is left.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from api.meta import controller_of, namespaced_key, owner_reference, parse_time
from api.pods import is_ready
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
BACKOFF_BASE = 10.0  # seconds: the first retry waits this long
BACKOFF_MAX = 360.0  # doubling stops at six minutes
BURST = 500

Pod = dict[str, Any]


# -- actions --------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePod:
    index: int | None  # completion index for Indexed Jobs


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str


@dataclass(frozen=True)
class RemoveTrackingFinalizer:
    name: str


@dataclass(frozen=True)
class UpdateStatus:
    status: dict[str, Any]


@dataclass(frozen=True)
class DeleteJob:
    """ttlSecondsAfterFinished has passed (the TTL-after-finished controller's job)."""


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


Action = CreatePod | DeletePod | RemoveTrackingFinalizer | UpdateStatus | DeleteJob | Event


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None

    def wake_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds


# -- facts about pods and Jobs ----------------------------------------------------


def completion_index(pod: Pod) -> int | None:
    text = (pod["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION)
    return int(text) if text is not None and str(text).isdigit() else None


def is_succeeded(pod: Pod) -> bool:
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def is_failed(pod: Pod, job: dict[str, Any]) -> bool:
    """Failed, or (with podReplacementPolicy TerminatingOrFailed) being deleted unfinished."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return True
    if (job.get("spec") or {}).get("podReplacementPolicy") == "Failed":
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase != "Succeeded"


def is_finished(pod: Pod, job: dict[str, Any]) -> bool:
    return is_succeeded(pod) or is_failed(pod, job)


def finished_at(pod: Pod) -> datetime.datetime | None:
    """When the pod's last container stopped (else its deletion, else its creation)."""
    times = []
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        t = parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if t:
            times.append(t)
    if times:
        return max(times)
    meta = pod["metadata"]
    return parse_time(meta.get("deletionTimestamp")) or parse_time(meta.get("creationTimestamp"))


def has_condition(job: dict[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def is_finished_job(job: dict[str, Any]) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


def backoff_delay(failures: int) -> float:
    """10 s after the first failure, doubling, at most 6 minutes."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX)


def parse_indexes(text: str | None) -> set[int]:
    """`1,3-5` -> {1, 3, 4, 5}."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        elif part.strip():
            out.add(int(part))
    return out


def format_indexes(indexes: set[int]) -> str:
    """{1, 3, 4, 5} -> `1,3-5` (as status.completedIndexes writes them)."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def _exit_codes(pod: Pod, container: str | None) -> list[int]:
    codes = []
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        if container and c.get("name") != container:
            continue
        terminated = (c.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") is not None:
            codes.append(int(terminated["exitCode"]))
    return codes


def failure_policy_rule(job: dict[str, Any], pod: Pod) -> tuple[int, dict[str, Any]] | None:
    """The first podFailurePolicy rule a failed pod matches: (its index, the rule)."""
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
    for i, rule in enumerate(rules):
        on_codes = rule.get("onExitCodes")
        if on_codes:
            values = set(on_codes.get("values") or [])
            codes = _exit_codes(pod, on_codes.get("containerName"))
            if on_codes.get("operator") == "In":
                if any(c in values for c in codes):
                    return i, rule
            elif any(c != 0 and c not in values for c in codes):
                return i, rule
        for pattern in rule.get("onPodConditions") or []:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get(
                    "status", "True"
                ):
                    return i, rule
    return None


def _ignored(job: dict[str, Any], pod: Pod) -> bool:
    """A failure the podFailurePolicy says to Ignore: not counted, no back-off."""
    if (pod.get("status") or {}).get("phase") != "Failed":
        return False
    matched = failure_policy_rule(job, pod)
    return matched is not None and matched[1].get("action") == "Ignore"


def _fail_job_message(job: dict[str, Any], pod: Pod, index: int, rule: dict[str, Any]) -> str:
    """Kubernetes' wording for a pod that matched a FailJob rule."""
    ns, name = pod["metadata"].get("namespace", ""), pod["metadata"]["name"]
    on_codes = rule.get("onExitCodes")
    if on_codes:
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            code = ((c.get("state") or {}).get("terminated") or {}).get("exitCode")
            if code is not None and code != 0:
                return (
                    f"Container {c.get('name')} for pod {ns}/{name} failed with exit code "
                    f"{code} matching FailJob rule at index {index}"
                )
    return f"Pod {ns}/{name} has condition matching FailJob rule at index {index}"


def _condition(kind: str, reason: str, message: str, now: str, status: str = "True") -> dict:
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def _set_condition(conditions: list[dict[str, Any]], new: dict[str, Any]) -> bool:
    """Add or update a condition in place; True when something changed."""
    for i, c in enumerate(conditions):
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"]:
                return False
            conditions[i] = new
            return True
    conditions.append(new)
    return True


# -- the policy ----------------------------------------------------------------------


def decide(job: dict[str, Any], pods: list[Pod], now: datetime.datetime) -> Plan:
    """What to do for `job`, given the pods it owns (as the cache shows them)."""
    plan = Plan()
    meta, spec = job["metadata"], job.get("spec") or {}
    old_status = job.get("status") or {}
    status = copy.deepcopy(old_status)
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    backoff_limit = int(spec.get("backoffLimit", 6))

    if is_finished_job(job):
        # Everything after the end: let go of pods still held, then wait for the TTL.
        for pod in pods:
            if TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or []):
                plan.actions.append(RemoveTrackingFinalizer(pod["metadata"]["name"]))
        ttl = spec.get("ttlSecondsAfterFinished")
        ended = parse_time(_finish_time(job))
        if ttl is not None and ended is not None:
            left = ended + datetime.timedelta(seconds=int(ttl)) - now
            if left.total_seconds() <= 0:
                if not meta.get("deletionTimestamp"):
                    plan.actions.append(DeleteJob())
            else:
                plan.wake_in(left.total_seconds())
        return plan

    # 1. Counting finished pods exactly once (see the module docstring).
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    unc_ok: list[str] = list(uncounted.get("succeeded") or [])
    unc_failed: list[str] = list(uncounted.get("failed") or [])
    recorded = set(unc_ok) | set(unc_failed)  # already stored: finalizers may go
    by_uid = {p["metadata"]["uid"]: p for p in pods}
    succeeded = int(status.get("succeeded", 0))
    failed = int(status.get("failed", 0))
    fail_job: str | None = None
    for uid in list(recorded):
        pod = by_uid.get(uid)
        if pod is None or TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
            if uid in unc_ok:
                unc_ok.remove(uid)
                succeeded += 1
            else:
                unc_failed.remove(uid)
                failed += 1
    for pod in pods:
        pmeta = pod["metadata"]
        uid = pmeta["uid"]
        tracked = TRACKING_FINALIZER in (pmeta.get("finalizers") or [])
        if not tracked or not is_finished(pod, job):
            continue
        if uid in recorded:
            plan.actions.append(RemoveTrackingFinalizer(pmeta["name"]))
            continue
        if is_succeeded(pod):
            unc_ok.append(uid)
            continue
        matched = (
            failure_policy_rule(job, pod)
            if (pod.get("status") or {}).get("phase") == "Failed"
            else None
        )
        if matched and matched[1].get("action") == "Ignore":
            plan.actions.append(RemoveTrackingFinalizer(pmeta["name"]))  # not a failure at all
            continue
        if matched and matched[1].get("action") == "FailJob" and fail_job is None:
            fail_job = _fail_job_message(job, pod, *matched)
        unc_failed.append(uid)
    status["uncountedTerminatedPods"] = {
        k: v for k, v in (("succeeded", unc_ok), ("failed", unc_failed)) if v
    }
    status["succeeded"], status["failed"] = succeeded, failed
    total_ok = succeeded + len(unc_ok)
    total_failed = failed + len(unc_failed)

    active = [p for p in pods if not p["metadata"].get("deletionTimestamp") and not _done(p)]
    terminating = [p for p in pods if p["metadata"].get("deletionTimestamp") and not _done(p)]
    completed_indexes = parse_indexes(status.get("completedIndexes"))
    if indexed:
        for pod in pods:
            i = completion_index(pod)
            if is_succeeded(pod) and i is not None and i < int(completions or 0):
                completed_indexes.add(i)
        status["completedIndexes"] = format_indexes(completed_indexes)
        if not status["completedIndexes"]:
            status.pop("completedIndexes")

    suspended = bool(spec.get("suspend"))
    if not suspended and not status.get("startTime"):
        status["startTime"] = stamp

    # 2. Has the Job reached its end?
    ending = has_condition(job, "SuccessCriteriaMet") or has_condition(job, "FailureTarget")
    if not ending:
        reason = message = ""
        start = parse_time(status.get("startTime"))
        deadline = spec.get("activeDeadlineSeconds")
        if fail_job:
            reason, message = "PodFailurePolicy", fail_job
        elif total_failed > backoff_limit:
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        elif deadline is not None and start is not None and not suspended:
            left = (start + datetime.timedelta(seconds=int(deadline)) - now).total_seconds()
            if left <= 0:
                reason, message = (
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            else:
                plan.wake_in(left)
        if reason:
            _set_condition(conditions, _condition("FailureTarget", reason, message, stamp))
            plan.actions.append(Event("Warning", reason, message))
            ending = True
        elif _succeeded_enough(spec, total_ok, completed_indexes, active):
            _set_condition(
                conditions,
                _condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    stamp,
                ),
            )
            ending = True

    if ending:
        # Stop whatever still runs; finish once nothing runs and everything is counted.
        for pod in active:
            plan.actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
        target = next(
            c
            for c in conditions
            if c.get("type") in ("SuccessCriteriaMet", "FailureTarget")
            and c.get("status") == "True"
        )
        counting = bool(unc_ok or unc_failed) or any(
            isinstance(a, RemoveTrackingFinalizer) for a in plan.actions
        )
        if not active and not terminating and not counting:
            final = "Complete" if target["type"] == "SuccessCriteriaMet" else "Failed"
            _set_condition(
                conditions, _condition(final, target["reason"], target["message"], stamp)
            )
            if final == "Complete":
                status["completionTime"] = stamp
                plan.actions.append(Event("Normal", "Completed", "Job completed"))
            status.pop("uncountedTerminatedPods", None)
        active_count = 0
    else:
        active_count = _scale(job, spec, pods, active, completed_indexes, total_ok, now, plan)
        if suspended:
            if _set_condition(
                conditions, _condition("Suspended", "JobSuspended", "Job suspended", stamp)
            ):
                plan.actions.append(Event("Normal", "Suspended", "Job suspended"))
        elif has_condition(job, "Suspended"):
            _set_condition(
                conditions, _condition("Suspended", "JobResumed", "Job resumed", stamp, "False")
            )
            status["startTime"] = stamp
            plan.actions.append(Event("Normal", "Resumed", "Job resumed"))

    status["active"] = active_count
    status["ready"] = sum(1 for p in active if is_ready(p))
    status["terminating"] = len(terminating)
    if not conditions:
        status.pop("conditions")
    if _strip_zero(status) != _strip_zero(old_status):
        # The status goes first: finalizers are removed only for uids it records.
        plan.actions.insert(0, UpdateStatus(status))
    return plan


def _done(pod: Pod) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _finish_time(job: dict[str, Any]) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c.get("lastTransitionTime")
    return None


def _strip_zero(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if v not in (0, None, {}, [], "")}


def _succeeded_enough(
    spec: dict[str, Any], total_ok: int, completed: set[int], active: list[Pod]
) -> bool:
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed":
        return len(completed) >= int(completions or 0)
    if completions is None:  # a work queue: done when one succeeded and the rest stopped
        return total_ok > 0 and not active
    return total_ok >= int(completions)


def _scale(
    job: dict[str, Any],
    spec: dict[str, Any],
    pods: list[Pod],
    active: list[Pod],
    completed: set[int],
    total_ok: int,
    now: datetime.datetime,
    plan: Plan,
) -> int:
    """Create or delete pods toward the wanted number of active pods; returns the active count."""
    if spec.get("suspend"):
        for pod in active:
            plan.actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
        return 0
    parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
    completions = spec.get("completions")
    indexed = spec.get("completionMode") == "Indexed"
    if indexed:
        running = {completion_index(p) for p in active}
        missing = [
            i for i in range(int(completions or 0)) if i not in completed and i not in running
        ]
        wanted = min(parallelism, len(missing) + len(active))
    elif completions is None:
        wanted = parallelism if total_ok == 0 else len(active)
        missing = []
    else:
        wanted = max(min(parallelism, int(completions) - total_ok), 0)
        missing = []
    if len(active) > wanted:
        # Too many: the newest go first.
        extra = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        for pod in extra[wanted:]:
            plan.actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
        return wanted
    need = min(wanted - len(active), BURST)
    if need <= 0:
        return len(active)
    # Back-off after failures: count the failures since the last success.
    finished = sorted(
        (p for p in pods if _done(p) or p["metadata"].get("deletionTimestamp")),
        key=lambda p: finished_at(p) or now,
    )
    failures, last_failure = 0, None
    for pod in finished:
        if is_succeeded(pod):
            failures, last_failure = 0, None
        elif is_failed(pod, job) and not _ignored(job, pod):
            failures, last_failure = failures + 1, finished_at(pod)
    if failures and last_failure is not None:
        wait = (last_failure - now).total_seconds() + backoff_delay(failures)
        if wait > 0:
            plan.wake_in(wait)
            return len(active)
    if indexed:
        plan.actions += [CreatePod(i) for i in missing[:need]]
    else:
        plan.actions += [CreatePod(None) for _ in range(need)]
    return len(active) + need


def pod_from_template(job: dict[str, Any], index: int | None) -> Pod:
    """A pod of the Job; Indexed Jobs' pods know their index by annotation, label, env, hostname."""
    meta, spec = job["metadata"], job.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    pod_spec = template.get("spec") or {}
    prefix = f"{meta['name']}-"
    if index is not None:
        annotations[INDEX_ANNOTATION] = str(index)
        labels[INDEX_LABEL] = str(index)
        prefix = f"{meta['name']}-{index}-"
        pod_spec.setdefault("hostname", f"{meta['name']}-{index}")
        env = {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']",
                }
            },
        }
        for c in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
            c["env"] = [*(c.get("env") or []), env]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": prefix,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(job)],
            "finalizers": [TRACKING_FINALIZER],
        },
        "spec": pod_spec,
    }


# -- the shell ---------------------------------------------------------------------


class JobController(Controller):
    name = "job-controller"
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informers.get("batch/v1", "Job")
        self.pods = ctx.informers.get("v1", "Pod")
        self.jobs.add_handlers(
            on_add=lambda j: self.enqueue(namespaced_key(j)),
            on_update=lambda _o, j: self.enqueue(namespaced_key(j)),
            on_delete=self._job_deleted,
        )
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda _o, p: self._pod_changed(p),
            on_delete=self._pod_changed,
        )

    def _job_deleted(self, job: dict[str, Any]) -> None:
        """Its pods may still hold the tracking finalizer: nobody else will remove it."""
        for pod in self.pods.store.by_index("owner", job["metadata"]["uid"]):
            if TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or []):
                self.enqueue(f"orphan|{namespaced_key(pod)}")

    def _pod_changed(self, pod: Pod) -> None:
        ref = controller_of(pod)
        if ref is not None and ref.get("kind") == "Job":
            self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")
            if TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or []):
                self.enqueue(f"orphan|{namespaced_key(pod)}")

    async def reconcile(self, key: str) -> Result:
        if key.startswith("orphan|"):
            await self._release_orphan(key.removeprefix("orphan|"))
            return Result.done()
        job = self.jobs.store.get(key)
        if job is None:
            return Result.done()
        pods = [
            p
            for p in self.pods.store.by_index("owner", job["metadata"]["uid"])
            if (controller_of(p) or {}).get("uid") == job["metadata"]["uid"]
        ]
        plan = decide(job, pods, datetime.datetime.now(datetime.UTC))
        if plan.actions:
            spec, status = job.get("spec") or {}, job.get("status") or {}
            await self.apply(
                plan.actions,
                job,
                decide=decide,
                observed=(
                    f"{status.get('active', 0)} active, {status.get('succeeded', 0)} succeeded, "
                    f"{status.get('failed', 0)} failed pods"
                ),
                wanted=f"{spec.get('completions', 'any')} completions",
            )
        return Result(requeue_after=plan.requeue_after)

    async def _release_orphan(self, pod_key: str) -> None:
        """A pod whose Job is gone would keep its finalizer forever: let it go."""
        pod = self.pods.store.get(pod_key)
        if pod is None:
            return
        ref = controller_of(pod) or {}
        job = self.jobs.store.get(f"{pod['metadata']['namespace']}/{ref.get('name')}")
        if job is not None and job["metadata"]["uid"] == ref.get("uid"):
            return
        try:
            await self.ctx.client.get("batch/v1", "Job", pod["metadata"]["namespace"], ref["name"])
            return  # the cache lags: the Job is there
        except errors.NotFound:
            pass
        await self.apply(
            [RemoveTrackingFinalizer(pod["metadata"]["name"])],
            pod,
            observed="its Job is gone",
            wanted="no finalizer left to hold the pod",
        )

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            UpdateStatus: self._update_status,
            CreatePod: self._create_pod,
            DeletePod: self._delete_pod,
            RemoveTrackingFinalizer: self._remove_tracking_finalizer,
            DeleteJob: self._delete_job,
            Event: self._event,
        }

    async def _update_status(self, action: UpdateStatus, step: Step) -> None:
        body = copy.deepcopy(step.owner or {})
        body["status"] = action.status
        await step.api.update(body, sub="status")  # guarded: a stale view fails, retried

    async def _create_pod(self, action: CreatePod, step: Step) -> None:
        job = step.owner or {}
        try:
            pod = await step.api.create(pod_from_template(job, action.index))
        except errors.ApiError as e:
            step.event("Warning", "FailedCreate", f"Error creating: {e}")
            raise
        step.event("Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    async def _delete_pod(self, action: DeletePod, step: Step) -> None:
        await step.delete_pod(action.name, action.uid)

    async def _remove_tracking_finalizer(self, action: RemoveTrackingFinalizer, step: Step) -> None:
        """Bookkeeping Kubernetes records no Event for (the trace still shows it)."""
        step.quiet = True
        ns = (step.owner or {})["metadata"]["namespace"]
        pod = self.pods.store.get(f"{ns}/{action.name}")
        if pod is None:
            step.note = "pod gone from the cache"
            return
        finalizers = [f for f in pod["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER]
        patch = [
            {"op": "test", "path": "/metadata/finalizers", "value": pod["metadata"]["finalizers"]},
            {"op": "replace", "path": "/metadata/finalizers", "value": finalizers},
        ]
        try:
            await step.api.patch(
                "v1", "Pod", ns, action.name, patch, patch_type="application/json-patch+json"
            )
        except errors.NotFound:
            step.note = "already gone"

    async def _delete_job(self, action: DeleteJob, step: Step) -> None:
        meta = (step.owner or {})["metadata"]
        try:
            await step.api.delete(
                "batch/v1", "Job", meta["namespace"], meta["name"], propagation="Foreground"
            )
        except errors.NotFound:
            step.note = "already gone"
            return
        # Kubernetes' TTL-after-finished controller only logs this; an Event here lets
        # `kubectl get events` say why the Job vanished (the Job's own events outlive it).
        step.event(
            "Normal", "Deleted", f"Job {meta['name']} deleted: its TTL after finishing expired"
        )

    async def _event(self, action: Event, step: Step) -> None:
        step.event(action.type, action.reason, action.message)
