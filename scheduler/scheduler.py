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
from typing import Any

from api.meta import namespaced_key, now_rfc3339
from client import errors
from client.events import EventRecorder
from client.informer import Informer
from client.rest import Client

from .cache import Cache
from .framework import schedule
from .queue import SchedulingQueue

log = logging.getLogger("skiff.scheduler")
SCHEDULER_NAME = "default-scheduler"
MAX_INFLIGHT_BINDS = 16


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
        self.recorder = EventRecorder(client, "default-scheduler")
        self.rng = rng or random.Random()
        self.pods = Informer(client, "v1", "Pod")
        self.nodes = Informer(client, "v1", "Node")
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
        self.pods.start()
        self.nodes.start()
        try:
            await asyncio.gather(self.pods.wait_for_sync(), self.nodes.wait_for_sync())
            log.info("caches synced; scheduling")
            while True:
                key, _ = await self.queue.pop()
                current = self.pods.store.get(key)
                if current is None or not needs_scheduling(current):
                    continue
                await self.schedule_one(key, current)
        finally:
            await self.pods.stop()
            await self.nodes.stop()
            for task in self._binds:
                task.cancel()

    async def schedule_one(self, key: str, pod: dict[str, Any]) -> None:
        # Wait for a binding slot first, so the decision sees every assumed pod.
        await self._bind_slots.acquire()
        decision = schedule(pod, self.cache.schedulable_nodes(), self.rng)
        if decision.node is None:
            self._bind_slots.release()
            await self._unschedulable(key, pod, decision.message)
            return
        self.cache.assume(key, pod, decision.node)
        task = asyncio.create_task(self._bind(key, pod, decision.node))
        task.add_done_callback(lambda _: self._bind_slots.release())
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    async def _bind(self, key: str, pod: dict[str, Any], node: str) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.client.create_subresource(
                "v1", "Pod", meta["namespace"], meta["name"], "binding", binding
            )
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
        await self.recorder.event(
            pod, "Normal", "Scheduled", f"Successfully assigned {key} to {node}"
        )

    async def _unschedulable(self, key: str, pod: dict[str, Any], message: str) -> None:
        meta = pod["metadata"]
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
            try:
                await self.client.patch(
                    "v1",
                    "Pod",
                    meta["namespace"],
                    meta["name"],
                    {"status": {"conditions": [*conditions, condition]}},
                    sub="status",
                )
            except errors.ApiError as e:
                log.warning("could not mark %s unschedulable: %s", key, e)
        await self.recorder.event(pod, "Warning", "FailedScheduling", message)
        self.queue.requeue_after_failure(key, unschedulable=True)


def _waits_for_peers(pod: dict[str, Any]) -> bool:
    """Whether another pod's arrival can make this pod schedulable."""
    spec = pod.get("spec") or {}
    affinity = spec.get("affinity") or {}
    return bool(affinity.get("podAffinity") or spec.get("topologySpreadConstraints"))
