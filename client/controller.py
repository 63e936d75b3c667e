"""What every control loop shares: shared informers, a work queue, workers, a context.

It lives in client/ rather than controllers/ because the scheduler, the
kubelet and the proxy run loops of the same shape and may not import
controllers/.

A controller declares which kinds it watches and how an event maps to the key
it must reconcile; `run` starts its workers. A worker pops a key, calls the
controller's `reconcile(key)`, forgets the key on success and re-adds it with
backoff on failure (or after the delay the controller asked for). Nothing
here decides anything: decisions live in each controller's pure `decide`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import actions as shell
from .events import EventRecorder
from .informer import Indexer, Informer, Transform, by_node_name, by_owner_uid, compact
from .loopcontrol import LoopControl
from .rest import Client
from .trace import Record, Tracer, current_reconcile
from .workqueue import ShutDown, WorkQueue

log = logging.getLogger("skiff.controllers")


@dataclass(frozen=True)
class Result:
    requeue_after: float | None = None

    @staticmethod
    def done() -> Result:
        return Result()


class Informers:
    """One informer per kind, shared by every controller in the process."""

    INDEXERS: dict[str, dict[str, Indexer]] = {
        "Pod": {"node": by_node_name, "owner": by_owner_uid},
        "ReplicaSet": {"owner": by_owner_uid},
        "EndpointSlice": {"owner": by_owner_uid},
    }

    def __init__(self, client: Client, transforms: dict[str, Transform] | None = None) -> None:
        """`transforms`: by kind, what each cached object is cut down to (default:
        `compact`), e.g. only the pod fields the process's controllers read."""
        self.client = client
        self.transforms = transforms or {}
        self._by_kind: dict[tuple[str, str], Informer] = {}

    def get(self, api_version: str, kind: str) -> Informer:
        key = (api_version, kind)
        if key not in self._by_kind:
            self._by_kind[key] = Informer(
                self.client,
                api_version,
                kind,
                indexers=self.INDEXERS.get(kind),
                transform=self.transforms.get(kind, compact),
            )
        return self._by_kind[key]

    def start(self) -> None:
        for informer in self._by_kind.values():
            informer.start()

    async def wait_for_sync(self) -> None:
        await asyncio.gather(*(i.wait_for_sync() for i in self._by_kind.values()))

    async def stop(self) -> None:
        for informer in self._by_kind.values():
            await informer.stop()


@dataclass
class Context:
    client: Client
    informers: Informers
    recorder: EventRecorder
    tracer: Tracer | None = None  # the process's reconcile trace (client/trace.py)
    loop: LoopControl | None = None  # slow motion, pause, step (client/loopcontrol.py)

    async def apply(
        self,
        actions: list[Any],
        owner: dict[str, Any] | None,
        *,
        handlers: Mapping[type, shell.Handler],
        controller: str,
        decide: Any = None,
        observed: str = "",
        wanted: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Carry out a decision: gate, handlers, Events, trace (client/actions.py)."""
        await shell.apply(
            actions,
            client=self.client,
            recorder=self.recorder,
            handlers=handlers,
            owner=owner,
            tracer=self.tracer,
            loop=self.loop,
            controller=controller,
            decide=decide,
            observed=observed,
            wanted=wanted,
            details=details,
        )


class Controller:
    """Base for controllers: a queue of keys and workers that reconcile them."""

    name = "controller"
    workers = 2
    # The controller's actions and who carries each out: the one shell
    # (`Context.apply`) looks the handler up here, no isinstance ladders.
    handlers: Mapping[type, shell.Handler] = {}

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.queue = WorkQueue()

    @property
    def short_name(self) -> str:
        """`replicaset` for `replicaset-controller`: what traces and `--only` use."""
        return self.name.removesuffix("-controller")

    async def apply(
        self,
        actions: list[Any],
        owner: dict[str, Any] | None,
        *,
        decide: Any = None,
        observed: str = "",
        wanted: str = "",
    ) -> None:
        """`Context.apply` with this controller's handlers and name."""
        await shell.apply(
            actions,
            client=self.ctx.client,
            recorder=self.ctx.recorder,
            handlers=self.handlers,
            owner=owner,
            tracer=getattr(self.ctx, "tracer", None),
            loop=getattr(self.ctx, "loop", None),
            controller=self.short_name,
            decide=decide,
            observed=observed,
            wanted=wanted,
        )

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueuer(
        self, key_of: Callable[[dict[str, Any]], str | None]
    ) -> Callable[[dict[str, Any]], None]:
        def handler(obj: dict[str, Any]) -> None:
            key = key_of(obj)
            if key:
                self.queue.add(key)

        return handler

    async def reconcile(self, key: str) -> Result:
        raise NotImplementedError

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            begun: list[Record] = []
            token = current_reconcile.set(begun)
            try:
                result = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._finish(begun, f"error: {e}")
                log.warning(
                    "%s: %s failed (attempt %d): %s",
                    self.name,
                    key,
                    self.queue.failures(key) + 1,
                    e,
                )
                self.queue.add_rate_limited(key)
            else:
                after = result.requeue_after
                self._finish(begun, "done" if after is None else f"requeue after {after:g}s")
                self.queue.forget(key)
                if result.requeue_after is not None:
                    self.queue.add_after(key, result.requeue_after)
            finally:
                current_reconcile.reset(token)
                self.queue.done(key)

    def _finish(self, begun: list[Record], outcome: str) -> None:
        tracer = getattr(self.ctx, "tracer", None)
        if tracer is None:
            return
        if not begun:
            tracer.count_noop(self.short_name)
        for record in begun:
            if not record.outcome.startswith("error"):
                record.outcome = outcome
            tracer.finish(record)

    async def run(self) -> None:
        await self.ctx.informers.wait_for_sync()
        log.info("%s: caches synced, starting %d workers", self.name, self.workers)
        try:
            await asyncio.gather(*(self._worker() for _ in range(self.workers)))
        finally:
            await self.queue.shutdown()
