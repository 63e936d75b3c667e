"""The pod lifecycle event generator: relist the runtime about every second and wake
the worker of every pod whose sandboxes or containers changed.

This is Kubernetes' "generic PLEG": the runtime has no event stream, so the
kubelet lists everything (ListPodSandbox + ListContainers), compares each pod's
records with the previous relist, and reports the pods that differ. It is also
how pods the API no longer knows are found: their sandboxes and containers
carry the pod's uid in their labels, and the worker for that uid tears them down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from proto import runtime_pb2 as pb

from .config import POD_UID
from .observed import CREATED, EXITED, RUNNING, UNKNOWN, Container, Observed, Sandbox

log = logging.getLogger("skiff.kubelet.pleg")
RELIST_PERIOD = 1.0

_STATES = {
    pb.CONTAINER_CREATED: CREATED,
    pb.CONTAINER_RUNNING: RUNNING,
    pb.CONTAINER_EXITED: EXITED,
    pb.CONTAINER_UNKNOWN: UNKNOWN,
}


def sandbox_of(s: Any) -> Sandbox:
    return Sandbox(
        id=s.id,
        ready=s.state == pb.SANDBOX_READY,
        attempt=s.metadata.attempt,
        created_at=s.created_at / 1e9,
        ip=s.ip,
    )


def container_of(c: Any) -> Container:
    return Container(
        id=c.id,
        name=c.metadata.name,
        attempt=c.metadata.attempt,
        state=_STATES.get(c.state, UNKNOWN),
        sandbox_id=c.pod_sandbox_id,
        created_at=c.created_at / 1e9,
        started_at=c.started_at / 1e9,
        finished_at=c.finished_at / 1e9,
        exit_code=c.exit_code,
        reason=c.reason,
        message=c.message,
        image=c.image.image,
        image_ref=c.image_ref,
        log_path=c.log_path,
    )


async def list_pods(runtime: Any, uid: str = "") -> dict[str, Observed]:
    """What the runtime holds, by pod uid (only that pod's when `uid` is given)."""
    selector = {POD_UID: uid} if uid else {}
    sandboxes = (
        await runtime.ListPodSandbox(pb.ListPodSandboxRequest(label_selector=selector))
    ).items
    containers = (
        await runtime.ListContainers(pb.ListContainersRequest(label_selector=selector))
    ).containers
    by_uid: dict[str, tuple[list[Sandbox], list[Container]]] = {}
    for s in sandboxes:
        if POD_UID in s.labels:
            by_uid.setdefault(s.labels[POD_UID], ([], []))[0].append(sandbox_of(s))
    for c in containers:
        if POD_UID in c.labels:
            by_uid.setdefault(c.labels[POD_UID], ([], []))[1].append(container_of(c))
    return {u: Observed(tuple(s), tuple(c)) for u, (s, c) in by_uid.items()}


def _fingerprint(o: Observed) -> tuple[Any, ...]:
    return (
        tuple(sorted((s.id, s.ready) for s in o.sandboxes)),
        tuple(sorted((c.id, c.state) for c in o.containers)),
    )


class Pleg:
    def __init__(self, runtime: Any, wake: Callable[[str], None]) -> None:
        self.runtime = runtime
        self.wake = wake
        self.last: dict[str, tuple[Any, ...]] = {}
        self.relisted_at = 0.0

    async def relist(self) -> None:
        pods = await list_pods(self.runtime)
        now = {uid: _fingerprint(o) for uid, o in pods.items()}
        for uid in set(now) | set(self.last):
            if now.get(uid) != self.last.get(uid):
                self.wake(uid)
        self.last = now
        self.relisted_at = time.monotonic()

    def uids(self) -> set[str]:
        return set(self.last)

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except grpc.aio.AioRpcError as e:
                log.warning("relisting the runtime failed: %s", e.details())
            await asyncio.sleep(RELIST_PERIOD)
