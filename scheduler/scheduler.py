"""The scheduling loop: take the next pending pod, pick a node, assume it, bind it.

Binding (a POST to `pods/<name>/binding`) runs in the background so the loop
can go on to the next pod: the assumed pod already counts on its node, so the
next decision cannot overcommit it. A binding that fails is forgotten from the
cache and the pod goes back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from functools import partial
from typing import Any

from api import storage as st
from api.meta import namespaced_key, now_rfc3339
from client import actions as shell
from client import errors
from client.informer import Informer
from client.loopcontrol import LoopControl
from client.rest import Client
from client.trace import CAPACITY, Tracer

from .cache import Cache
from .events import QueuedRecorder
from .framework import Decision, schedule
from .plugins.volumebinding import Volumes, all_bound, claims_to_bind
from .pod_fields import for_scheduler
from .queue import SchedulingQueue

log = logging.getLogger("skiff.scheduler")
SCHEDULER_NAME = "default-scheduler"
# Bindings in flight at once. With the Event and trace writers this stays within the
# client's 16 kept-alive connections, so a burst reuses connections instead of paying
# a TLS handshake (on both sides) for every binding.
MAX_INFLIGHT_BINDS = 12
TRACE_RECORDS = 50
EXPLAINED_NODES = 4  # nodes whose verdicts and scores a trace record keeps
BIND_TIMEOUT_SECONDS = 600.0  # VolumeBinding's bindTimeoutSeconds: claims to get bound


@dataclass(frozen=True)
class Bind:
    """POST pods/<name>/binding: the pod goes to `node` (after its volumes, if any)."""

    node: str


@dataclass(frozen=True)
class MarkUnschedulable:
    """PodScheduled=False with kube-scheduler's message, and a FailedScheduling Event."""

    message: str


class VolumesTimedOut(Exception):
    """VolumeBinding's PreBind gave up waiting for the pod's claims to bind."""


def is_ours(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME


def needs_scheduling(pod: dict[str, Any]) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return (
        is_ours(pod)
        and not (pod.get("spec") or {}).get("nodeName")
        and not pod["metadata"].get("deletionTimestamp")
        and phase not in ("Succeeded", "Failed")
    )


class Scheduler:
    def __init__(self, client: Client, *, rng: random.Random | None = None) -> None:
        self.client = client
        self.cache = Cache()
        self.queue = SchedulingQueue()
        self.recorder = QueuedRecorder(client, "default-scheduler")
        # Each record carries a decision's explanation (a few KB): a ring of this many
        # stays under the trace ConfigMap's size cap, so none is written only to be cut.
        self.tracer = Tracer(client, "scheduler", capacity=min(CAPACITY, TRACE_RECORDS))
        self.loop = LoopControl(client, "scheduler")
        self.rng = rng or random.Random()
        self.pods = Informer(client, "v1", "Pod", transform=for_scheduler)
        self.nodes = Informer(client, "v1", "Node")
        self.claims = Informer(client, "v1", "PersistentVolumeClaim")
        self.pvs = Informer(client, "v1", "PersistentVolume")
        self.classes = Informer(client, "storage.k8s.io/v1", "StorageClass")
        self.volumes = Volumes(
            self.claims.store.items, self.pvs.store.items, self.classes.store.items
        )
        for informer in (self.claims, self.pvs, self.classes):
            # A claim or volume that appears or binds may make a waiting pod fit.
            informer.add_handlers(
                on_add=lambda _o: self.queue.move_all_unschedulable(),
                on_update=lambda _o, _n: self.queue.move_all_unschedulable(),
            )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self.nodes.add_handlers(
            on_add=self._node_changed,
            on_update=lambda _o, n: self._node_changed(n),
            on_delete=lambda n: self.cache.remove_node(n["metadata"]["name"]),
        )
        self._binds: set[asyncio.Task[None]] = set()
        # Bindings in flight at once: beyond this the loop waits, so a burst of pods
        # cannot queue thousands of requests that then time out together.
        self._bind_slots = asyncio.Semaphore(MAX_INFLIGHT_BINDS)

    # -- events -------------------------------------------------------------------

    def _pod_added(self, pod: dict[str, Any]) -> None:
        key = namespaced_key(pod)
        if needs_scheduling(pod):
            self.queue.add(key, pod)
        elif (pod.get("spec") or {}).get("nodeName"):
            self._pod_assigned(key, pod)

    def _pod_assigned(self, key: str, pod: dict[str, Any]) -> None:
        """A pod now on a node (first seen there, or our binding confirmed): pods that
        wait for a peer (pod affinity, topology spread) may fit now."""
        arrived = key not in self.cache.pod_node or key in self.cache.assumed
        self.cache.add_pod(key, pod)
        if arrived:
            self.queue.move_all_unschedulable(only=_waits_for_peers)

    def _pod_updated(self, old: dict[str, Any], pod: dict[str, Any]) -> None:
        key = namespaced_key(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            self.queue.delete(key)
            if pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get(
                "phase"
            ) in ("Succeeded", "Failed"):
                self.cache.remove_pod(key)
            else:
                self._pod_assigned(key, pod)
        elif needs_scheduling(pod):
            self.queue.update(key, pod)
            if key not in self.queue.unschedulable:
                self.queue.add(key, pod)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = namespaced_key(pod)
        self.queue.delete(key)
        if (pod.get("spec") or {}).get("nodeName"):
            self.cache.remove_pod(key)
            self.queue.move_all_unschedulable()  # room was freed

    def _node_changed(self, node: dict[str, Any]) -> None:
        self.cache.set_node(node)
        self.queue.move_all_unschedulable()

    # -- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        informers = (self.pods, self.nodes, self.claims, self.pvs, self.classes)
        for informer in informers:
            informer.start()
        self.loop.start()
        self.tracer.start()
        self.recorder.start()
        try:
            await asyncio.gather(*(i.wait_for_sync() for i in informers))
            log.info("caches synced; scheduling")
            while True:
                key, _ = await self.queue.pop()
                current = self.pods.store.get(key)
                if current is None or not needs_scheduling(current):
                    continue
                await self.schedule_one(key, current)
        finally:
            for informer in informers:
                await informer.stop()
            for task in self._binds:
                task.cancel()
            await self.loop.stop()
            await self.recorder.stop()
            await self.tracer.stop()

    async def schedule_one(self, key: str, pod: dict[str, Any]) -> None:
        # Wait for a binding slot first, so the decision sees every assumed pod.
        await self._bind_slots.acquire()
        decision = schedule(pod, self.cache.schedulable_nodes(), self.rng, self.volumes)
        if decision.node is None:
            self._bind_slots.release()
            await self._unschedulable(key, pod, decision.message, decision)
            return
        self.cache.assume(key, pod, decision.node)
        task = asyncio.create_task(self._bind(key, pod, decision))
        task.add_done_callback(lambda _: self._bind_slots.release())
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    async def _apply(
        self, action: Bind | MarkUnschedulable, pod: dict[str, Any], decision: Decision | None
    ) -> None:
        """The one shell (client/actions.py): loop control, Events, the trace."""
        # Explained only if the trace writes the record (see client/trace.py: _Kept).
        details = partial(decision.explanation, EXPLAINED_NODES) if decision is not None else None
        looked = len(decision.filters) if decision is not None else 0
        await shell.apply(
            [action],
            client=self.client,
            recorder=self.recorder,
            handlers={Bind: self._do_bind, MarkUnschedulable: self._do_unschedulable},
            owner=pod,
            tracer=self.tracer,
            loop=self.loop,
            controller="scheduler",
            decide=schedule,
            observed=f"pending pod, {looked} nodes looked at",
            wanted="a node that passes every filter, the best scored",
            details=details,
        )  # fmt: skip

    async def _bind(self, key: str, pod: dict[str, Any], decision: Decision) -> None:
        node = decision.node or ""
        try:
            await self._apply(Bind(node), pod, decision)
        except VolumesTimedOut:
            log.warning("binding volumes of %s on %s timed out", key, node)
            self.cache.forget(key)
            await self._unschedulable(
                key,
                pod,
                'running PreBind plugin "VolumeBinding": binding volumes: '
                "timed out waiting for the condition",
                None,
            )
            return
        except errors.ApiError as e:
            log.warning("binding %s to %s failed: %s", key, node, e)
            self.cache.forget(key)
            if not isinstance(e, errors.NotFound):
                self.queue.requeue_after_failure(key, unschedulable=False)
            return
        except Exception as e:
            log.warning("binding %s to %s failed: %s", key, node, e)
            self.cache.forget(key)
            self.queue.requeue_after_failure(key, unschedulable=False)
            return
        self.queue.done(key)

    async def _do_bind(self, action: Bind, step: shell.Step) -> None:
        pod = step.owner or {}
        meta = pod["metadata"]
        if not await self._bind_volumes(pod, action.node, step):
            raise VolumesTimedOut()
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "target": {"apiVersion": "v1", "kind": "Node", "name": action.node},
        }
        await step.api.create_subresource(
            "v1", "Pod", meta["namespace"], meta["name"], "binding", binding
        )
        step.event(
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {action.node}",
        )

    async def _bind_volumes(self, pod: dict[str, Any], node: str, step: shell.Step) -> bool:
        """VolumeBinding's PreBind: mark the pod's unbound WaitForFirstConsumer claims with
        the chosen node, then wait (up to bindTimeoutSeconds) until all its claims are bound.
        """
        namespace = pod["metadata"]["namespace"]
        for claim in claims_to_bind(pod, self.volumes):
            annotations = claim["metadata"].get("annotations") or {}
            if annotations.get(st.SELECTED_NODE) != node:
                await step.api.patch(
                    "v1",
                    "PersistentVolumeClaim",
                    namespace,
                    claim["metadata"]["name"],
                    {"metadata": {"annotations": {st.SELECTED_NODE: node}}},
                )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BIND_TIMEOUT_SECONDS
        while not all_bound(pod, self.volumes):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.1)  # the informers move the claims along
        return True

    async def _unschedulable(
        self, key: str, pod: dict[str, Any], message: str, decision: Decision | None
    ) -> None:
        try:
            await self._apply(MarkUnschedulable(message), pod, decision)
        except errors.ApiError as e:
            log.warning("could not mark %s unschedulable: %s", key, e)
        self.queue.requeue_after_failure(key, unschedulable=True)

    async def _do_unschedulable(self, action: MarkUnschedulable, step: shell.Step) -> None:
        pod = step.owner or {}
        meta = pod["metadata"]
        message = action.message
        conditions = [
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") != "PodScheduled"
        ]
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        }
        old = next(
            (
                c
                for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == "PodScheduled"
            ),
            None,
        )
        if not old or old.get("message") != message or old.get("status") != "False":
            await step.api.patch(
                "v1",
                "Pod",
                meta["namespace"],
                meta["name"],
                {"status": {"conditions": [*conditions, condition]}},
                sub="status",
            )
        step.event("Warning", "FailedScheduling", message)


def _waits_for_peers(pod: dict[str, Any]) -> bool:
    """Whether another pod's arrival can make this pod schedulable."""
    spec = pod.get("spec") or {}
    affinity = spec.get("affinity") or {}
    return bool(affinity.get("podAffinity") or spec.get("topologySpreadConstraints"))
