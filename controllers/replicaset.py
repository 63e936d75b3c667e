"""ReplicaSet controller: keeps the number of pods that match a ReplicaSet's
selector equal to spec.replicas.

`decide()` is the whole policy and is pure: given the ReplicaSet and the pods
the cache shows, it returns the actions to take. `ReplicaSetController`
gathers those inputs from the informer caches and carries the actions out.

Two details make it safe under concurrency, as in Kubernetes:
- *Expectations*: after asking for N creates, the controller waits until the
  cache has seen N new pods before deciding again, so a slow watch never
  makes it create twice.
- *Slow start*: creates go in batches of 1, 2, 4, ... and a batch that fails
  stops the rest, so a quota or admission error costs one call, not hundreds.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass
from typing import Any

from api.meta import controller_of, namespaced_key, owner_reference, parse_time
from api.pods import is_active, is_available, is_ready, ready_since
from api.selectors import selector_from_dict
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

BURST = 500  # at most this many creates or deletes per sync, as Kubernetes
EXPECTATIONS_TIMEOUT = 300.0


# -- actions: one API call each -------------------------------------------------


@dataclass(frozen=True)
class CreatePods:
    count: int


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str


@dataclass(frozen=True)
class AdoptPod:
    name: str


@dataclass(frozen=True)
class ReleasePod:
    name: str


@dataclass(frozen=True)
class UpdateStatus:
    status: dict[str, Any]


Action = CreatePods | DeletePod | AdoptPod | ReleasePod | UpdateStatus


# -- the policy --------------------------------------------------------------------


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: dict[str, Any], now: datetime.datetime) -> tuple[Any, ...]:
    """Sort key: pods to delete first sort first, in Kubernetes' order.

    Unscheduled before scheduled, pending before running, not ready before
    ready, ready for less time before longer, more restarts before fewer,
    newer before older.
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready = is_ready(pod)
    since = ready_since(pod)
    ready_for = (now - since).total_seconds() if since else 0.0
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    created = parse_time(pod["metadata"].get("creationTimestamp") or "")
    age = (now - created).total_seconds() if created else 0.0
    return (
        bool(spec.get("nodeName")),
        _PHASE_RANK.get(status.get("phase", "Pending"), 0),
        ready,
        ready_for,
        -restarts,
        age,
    )


def decide(
    rs: dict[str, Any],
    pods: list[dict[str, Any]],
    now: datetime.datetime,
    *,
    may_scale: bool = True,
) -> list[Action]:
    """The actions that bring `pods` in line with `rs`.

    `pods` are the pods in the ReplicaSet's namespace that either match its
    selector or name it as their controller. `may_scale` is False while
    earlier creates or deletes have not been observed yet (expectations).
    """
    meta, spec = rs["metadata"], rs.get("spec") or {}
    uid = meta["uid"]
    selector = selector_from_dict(spec.get("selector"))
    actions: list[Action] = []
    owned: list[dict[str, Any]] = []
    for pod in pods:
        ref = controller_of(pod)
        matches = selector.matches(pod["metadata"].get("labels") or {})
        if ref is not None and ref.get("uid") == uid:
            if matches:
                owned.append(pod)
            elif not pod["metadata"].get("deletionTimestamp"):
                actions.append(ReleasePod(pod["metadata"]["name"]))  # labels moved away
        elif ref is None and matches and is_active(pod) and not meta.get("deletionTimestamp"):
            actions.append(AdoptPod(pod["metadata"]["name"]))  # an orphan that fits
            owned.append(pod)

    active = [p for p in owned if is_active(p)]
    replicas = int(spec.get("replicas", 1))
    if may_scale and not meta.get("deletionTimestamp"):
        diff = len(active) - replicas
        if diff < 0:
            actions.append(CreatePods(min(-diff, BURST)))
        elif diff > 0:
            doomed = sorted(active, key=lambda p: deletion_rank(p, now))[: min(diff, BURST)]
            actions += [DeletePod(p["metadata"]["name"], p["metadata"]["uid"]) for p in doomed]

    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    status = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(
            1
            for p in active
            if all(
                (p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items()
            )
        ),
        "readyReplicas": sum(1 for p in active if is_ready(p)),
        "availableReplicas": sum(1 for p in active if is_available(p, min_ready, now)),
        "observedGeneration": int(meta.get("generation") or 0),
    }
    old = rs.get("status") or {}
    if any(old.get(k, 0) != v for k, v in status.items()):
        actions.append(UpdateStatus(status))
    return actions


def seconds_until_available(
    rs: dict[str, Any], pods: list[dict[str, Any]], now: datetime.datetime
) -> float | None:
    """How long until the next of this ReplicaSet's Ready pods becomes available.

    A pod becomes available when it has been Ready for minReadySeconds, and
    no watch event announces that moment: the controller must come back by
    itself then, or availableReplicas (and the Deployment waiting on it)
    stays behind. None when no pod is waiting for that.
    """
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    if min_ready <= 0:
        return None
    uid = rs["metadata"]["uid"]
    waits = []
    for pod in pods:
        ref = controller_of(pod)
        if ref is None or ref.get("uid") != uid or not is_active(pod):
            continue
        since = ready_since(pod)
        if since is not None:
            left = min_ready - (now - since).total_seconds()
            if left > 0:
                waits.append(left)
    return min(waits, default=None)


def pod_from_template(rs: dict[str, Any]) -> dict[str, Any]:
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": rs["metadata"]["name"] + "-",
            "namespace": rs["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner_reference(rs)],
        },
        "spec": template.get("spec") or {},
    }


# -- the shell ---------------------------------------------------------------------


class Expectations:
    """Creates and deletes asked for but not yet seen in the cache, per ReplicaSet."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, int, float]] = {}

    def expect(self, key: str, creates: int = 0, deletes: int = 0) -> None:
        c, d, _ = self._pending.get(key, (0, 0, 0.0))
        self._pending[key] = (c + creates, d + deletes, time.monotonic())

    def observed(self, key: str, *, created: int = 0, deleted: int = 0) -> None:
        if key in self._pending:
            c, d, t = self._pending[key]
            self._pending[key] = (max(c - created, 0), max(d - deleted, 0), t)

    def satisfied(self, key: str) -> bool:
        c, d, t = self._pending.get(key, (0, 0, 0.0))
        return (c <= 0 and d <= 0) or time.monotonic() - t > EXPECTATIONS_TIMEOUT

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    workers = 4
    api_version, kind = "apps/v1", "ReplicaSet"  # ReplicationController reuses all of this

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.replicasets = ctx.informers.get(self.api_version, self.kind)
        self.pods = ctx.informers.get("v1", "Pod")
        self.expectations = Expectations()
        self.replicasets.add_handlers(
            on_add=lambda rs: self.enqueue(namespaced_key(rs)),
            on_update=lambda _old, rs: self.enqueue(namespaced_key(rs)),
            on_delete=self._rs_deleted,
        )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    def _owner_key(self, pod: dict[str, Any]) -> str | None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != self.kind:
            return None
        return f"{pod['metadata']['namespace']}/{ref['name']}"

    def _rs_deleted(self, rs: dict[str, Any]) -> None:
        self.expectations.forget(namespaced_key(rs))

    def _pod_added(self, pod: dict[str, Any]) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed(key, created=1)
            self.enqueue(key)
        else:
            self._enqueue_matching(pod)  # an orphan some ReplicaSet may adopt

    def _pod_updated(self, old: dict[str, Any], pod: dict[str, Any]) -> None:
        for key in {self._owner_key(old), self._owner_key(pod)}:
            if key:
                self.enqueue(key)
        if old["metadata"].get("labels") != pod["metadata"].get("labels"):
            self._enqueue_matching(pod)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.observed(key, deleted=1)
            self.enqueue(key)

    def _enqueue_matching(self, pod: dict[str, Any]) -> None:
        labels = pod["metadata"].get("labels") or {}
        for rs in self.replicasets.store.by_index("namespace", pod["metadata"]["namespace"]):
            if selector_from_dict(self.view(rs)["spec"].get("selector")).matches(labels):
                self.enqueue(namespaced_key(rs))

    def view(self, rs: dict[str, Any]) -> dict[str, Any]:
        """The object as decide() reads it (a ReplicaSet as it is)."""
        return rs

    async def reconcile(self, key: str) -> Result:
        rs = self.replicasets.store.get(key)
        if rs is None:
            return Result.done()
        rs = self.view(rs)
        namespace = rs["metadata"]["namespace"]
        pods = self.pods.store.by_index("namespace", namespace)
        now = datetime.datetime.now(datetime.UTC)
        actions = decide(rs, pods, now, may_scale=self.expectations.satisfied(key))
        if actions:
            owned = [
                p for p in pods if (controller_of(p) or {}).get("uid") == rs["metadata"]["uid"]
            ]
            await self.apply(
                actions,
                rs,
                decide=decide,
                observed=f"{sum(1 for p in owned if is_active(p))} active pods",
                wanted=f"{int((rs.get('spec') or {}).get('replicas', 1))} replicas",
            )
        wait = seconds_until_available(rs, pods, now)
        return Result(requeue_after=wait) if wait is not None else Result.done()

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            CreatePods: self._create_pods,
            DeletePod: self._delete_pod,
            AdoptPod: self._adopt_pod,
            ReleasePod: self._release_pod,
            UpdateStatus: self._update_status,
        }

    async def _delete_pod(self, action: DeletePod, step: Step) -> None:
        key = namespaced_key(step.owner or {})
        self.expectations.expect(key, deletes=1)
        if not await step.delete_pod(action.name, action.uid):
            self.expectations.observed(key, deleted=1)  # no watch event will say so

    async def _adopt_pod(self, action: AdoptPod, step: Step) -> None:
        rs = step.owner or {}
        ns = rs["metadata"]["namespace"]
        pod = self.pods.store.get(f"{ns}/{action.name}")
        if pod is None:
            step.note = "pod gone from the cache"
            return
        refs = [*(pod["metadata"].get("ownerReferences") or []), owner_reference(rs)]
        await step.api.patch("v1", "Pod", ns, action.name, {"metadata": {"ownerReferences": refs}})
        step.event("Normal", "AdoptedPod", f"Adopted pod {action.name}: it matches the selector")

    async def _release_pod(self, action: ReleasePod, step: Step) -> None:
        rs = step.owner or {}
        ns = rs["metadata"]["namespace"]
        pod = self.pods.store.get(f"{ns}/{action.name}")
        if pod is None:
            step.note = "pod gone from the cache"
            return
        refs = [
            r
            for r in pod["metadata"].get("ownerReferences") or []
            if r.get("uid") != rs["metadata"]["uid"]
        ]
        await step.api.patch(
            "v1", "Pod", ns, action.name, {"metadata": {"ownerReferences": refs or None}}
        )
        step.event(
            "Normal",
            "ReleasedPod",
            f"Released pod {action.name}: its labels no longer match the selector",
        )

    async def _update_status(self, action: UpdateStatus, step: Step) -> None:
        rs = step.owner or {}
        meta = rs["metadata"]
        await step.api.patch(
            self.api_version,
            self.kind,
            meta["namespace"],
            meta["name"],
            {"status": action.status},
            sub="status",
        )

    async def _create_pods(self, action: CreatePods, step: Step) -> None:
        """Slow start: batches of 1, 2, 4, ...; a failed batch ends the sync."""
        rs = step.owner or {}
        key, count = namespaced_key(rs), action.count
        created, batch = 0, 1
        self.expectations.expect(key, creates=count)
        while created < count:
            size = min(batch, count - created)
            results = await asyncio.gather(
                *(step.api.create(pod_from_template(rs)) for _ in range(size)),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            for r in results:
                if not isinstance(r, BaseException):
                    step.event(
                        "Normal", "SuccessfulCreate", f"Created pod: {r['metadata']['name']}"
                    )
            created += size
            if failures:
                # Never-to-be-seen pods: this batch's failures and all skipped ones.
                self.expectations.observed(key, created=len(failures) + count - created)
                step.event("Warning", "FailedCreate", f"Error creating: {failures[0]}")
                raise failures[0]
            batch *= 2
