"""Pod garbage collector: pods nobody else will ever clean up.

As Kubernetes' podgc controller, every GC_PERIOD seconds (and at once when a
Node is deleted) it:

- deletes pods bound to a Node that no longer exists (no kubelet is left to
  finish them, so they would stay Terminating forever): first marked Failed
  with a `DisruptionTarget` condition (reason `DeletionByPodGC`), then
  deleted with no grace period. A Node counts as gone once it has been missing
  for QUARANTINE seconds (Kubernetes' quarantineTime: a pod may name a Node
  that is being created, or one that a restore brings back) and the API
  confirms it, since the cache may lag behind a Node just created;
- force-deletes terminating pods that were never scheduled (no kubelet will
  confirm their end);
- once more than `--terminated-pod-gc-threshold` pods have terminated
  (Succeeded or Failed), deletes the oldest of them down to the threshold
  (0 turns this off; Kubernetes' default is 12500).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from dataclasses import dataclass
from typing import Any

from client import errors
from client.controller import Context, Controller, Result
from client.informer import Informer

log = logging.getLogger("skiff.controllers.podgc")

GC_PERIOD = 20.0  # kube-controller-manager's gcCheckPeriod
QUARANTINE = 40.0  # podgc's quarantineTime: how long a Node is missing before it is gone
DEFAULT_TERMINATED_THRESHOLD = 12500
TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Collect:
    """Delete this pod (grace 0); `orphaned` pods are first marked Failed."""

    namespace: str
    name: str
    uid: str
    why: str  # orphaned | unscheduled-terminating | terminated
    orphaned: bool = False


def _pod(pod: dict[str, Any], why: str, orphaned: bool = False) -> Collect:
    meta = pod["metadata"]
    return Collect(meta.get("namespace", ""), meta["name"], meta.get("uid", ""), why, orphaned)


def quarantine(
    pods: list[dict[str, Any]], nodes: set[str], missing_since: dict[str, float], now: float
) -> tuple[dict[str, float], set[str]]:
    """Since when each Node that pods name but that does not exist has been missing
    (from `now` for one first seen missing; forgotten once it exists or no pod names
    it), and which of them have been missing for QUARANTINE: those are gone."""
    missing = {
        node: missing_since.get(node, now)
        for pod in pods
        if (node := (pod.get("spec") or {}).get("nodeName")) and node not in nodes
    }
    return missing, {node for node, since in missing.items() if now - since >= QUARANTINE}


def decide(
    pods: list[dict[str, Any]], nodes: set[str], threshold: int, gone: set[str]
) -> list[Collect]:
    """Which pods to collect, given every pod, the names of the Nodes that exist, the
    terminated-pod threshold and the Nodes past their quarantine (`quarantine`).
    Orphans first, then unscheduled terminating pods, then the oldest terminated pods
    past the threshold (a pod is named at most once)."""
    out: list[Collect] = []
    seen: set[str] = set()

    def add(c: Collect) -> None:
        if c.uid not in seen:
            seen.add(c.uid)
            out.append(c)

    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node not in nodes and node in gone:
            add(_pod(pod, "orphaned", orphaned=True))
    for pod in pods:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and not (pod.get("spec") or {}).get("nodeName"):
            add(_pod(pod, "unscheduled-terminating"))
    if threshold > 0:
        terminated = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") in TERMINAL
            and not p["metadata"].get("deletionTimestamp")
        ]
        excess = len(terminated) - threshold
        if excess > 0:
            terminated.sort(
                key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
            )
            for pod in terminated[:excess]:
                add(_pod(pod, "terminated"))
    return out


def failed_status(pod: dict[str, Any], now: str) -> dict[str, Any]:
    """The status patch podgc writes before deleting an orphan, as Kubernetes' does."""
    status = pod.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
    conditions.append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": now,
        }
    )
    patch: dict[str, Any] = {"conditions": conditions}
    if status.get("phase") not in TERMINAL:
        patch["phase"] = "Failed"
    return {"status": patch}


class PodGCController(Controller):
    name = "pod-garbage-collector"
    workers = 1

    def __init__(
        self, ctx: Context, terminated_threshold: int = DEFAULT_TERMINATED_THRESHOLD
    ) -> None:
        super().__init__(ctx)
        self.threshold = terminated_threshold
        self.pods: Informer = ctx.informers.get("v1", "Pod")
        self.nodes: Informer = ctx.informers.get("v1", "Node")
        self._wake = asyncio.Event()
        self.nodes.add_handlers(on_delete=lambda _node: self._wake.set())
        self._missing_since: dict[str, float] = {}  # Node name -> monotonic time first missed

    async def run(self) -> None:
        await asyncio.gather(self.pods.wait_for_sync(), self.nodes.wait_for_sync())
        log.info("%s: caches synced", self.name)
        while True:
            try:
                await self.reconcile("")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one failed pass must not end the loop
                log.warning("%s: pass failed: %s", self.name, e)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_pass())

    def _next_pass(self) -> float:
        """The GC period, or sooner when a missing Node's quarantine ends first (as
        Kubernetes' node queue hands a Node back after quarantineTime)."""
        now = time.monotonic()
        ends = [since + QUARANTINE - now for since in self._missing_since.values()]
        return max(0.1, min([GC_PERIOD, *ends]))

    async def reconcile(self, key: str) -> Result:
        nodes = {n["metadata"]["name"] for n in self.nodes.store.list()}
        pods = self.pods.store.list()
        self._missing_since, gone = quarantine(pods, nodes, self._missing_since, time.monotonic())
        actions = decide(pods, nodes, self.threshold, gone)
        confirmed: dict[str, bool] = {}
        for action in actions:
            pod = self.pods.store.get(f"{action.namespace}/{action.name}")
            if pod is None:
                continue
            if action.orphaned:
                node = pod["spec"]["nodeName"]
                if node not in confirmed:
                    confirmed[node] = await self._node_gone(node)
                if not confirmed[node]:
                    continue
            await self._collect(action, pod)
        return Result.done()

    async def _node_gone(self, name: str) -> bool:
        try:
            await self.ctx.client.get("v1", "Node", "", name)
        except errors.NotFound:
            return True
        return False

    async def _collect(self, action: Collect, pod: dict[str, Any]) -> None:
        api = self.ctx.client
        log.info("%s: deleting %s pod %s/%s", self.name, action.why, action.namespace, action.name)
        try:
            if action.orphaned:
                now = _now()
                await api.patch(
                    "v1",
                    "Pod",
                    action.namespace,
                    action.name,
                    failed_status(pod, now),
                    sub="status",
                )
            await api.delete(
                "v1", "Pod", action.namespace, action.name, grace_period=0, uid=action.uid
            )
        except (errors.NotFound, errors.Conflict):
            pass  # gone already, or a new pod of that name: nothing of ours to do


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
