"""The scheduler's Events, written off the binding path, as client-go's broadcaster does.

kube-scheduler's recorder puts each Event on a queue and returns; a background
writer writes them to the API (correlated: a repeat bumps `count`), and when the
queue is full the newest are dropped with a log line. Here the same: a binding
slot is freed as soon as the binding is written, not after its `Scheduled` Event
too, and a burst of pods does not double the write rate the bindings see: the
Events trail behind.

A few writers share the work (`WRITERS`), each Event going to the writer its
object hashes to: one object's Events are written in the order they were
recorded (a `FailedScheduling` before the `Scheduled` that followed it, a repeat
after the Event it bumps), while Events of different pods go out side by side.
One writer made etcd commit every Event on its own; with a few in flight etcd
commits several at once, and a burst of 1,000 pods cost the apiserver and etcd
together about 0.6 ms less CPU per pod (bench/scheduler.py, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from typing import Any

from client.events import EventRecorder

log = logging.getLogger("skiff.scheduler")
QUEUE_SIZE = 1000  # client-go's incoming queue length for its event broadcaster
WRITERS = 4  # Events in flight at once; each object's in order
DRAIN_ON_STOP_SECONDS = 2.0

_Item = tuple[dict[str, Any], str, str, str]


def writer_of(obj: dict[str, Any], writers: int) -> int:
    """Which writer writes `obj`'s Events: always the same one for one object."""
    meta = obj.get("metadata") or {}
    key = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
    return zlib.crc32(str(key).encode()) % writers


class QueuedRecorder(EventRecorder):
    """An EventRecorder whose `event()` only queues; `start()` begins the writers."""

    def __init__(
        self, *args: Any, queue_size: int = QUEUE_SIZE, writers: int = WRITERS, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.queue_size = queue_size
        self._queues: list[asyncio.Queue[_Item]] = [asyncio.Queue() for _ in range(writers)]
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    def queued(self) -> int:
        """Events recorded and not yet written (what the queue's bound counts)."""
        return sum(q.qsize() for q in self._queues)

    async def event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        if self.queued() >= self.queue_size:
            self.dropped += 1
            log.warning(
                "event queue full: dropping %s event on %s", reason, obj["metadata"].get("name")
            )
            return
        queue = self._queues[writer_of(obj, len(self._queues))]
        queue.put_nowait((obj, event_type, reason, message))

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(queue), name=f"scheduler events {i}")
                for i, queue in enumerate(self._queues)
            ]

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            obj, event_type, reason, message = await queue.get()
            await super().event(obj, event_type, reason, message)  # never raises
            queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued Event has been written (tests, shutdown)."""
        for queue in self._queues:
            await queue.join()

    async def stop(self) -> None:
        """Write what is queued (for a moment at most), then stop the writers."""
        if not self._tasks:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.drain(), DRAIN_ON_STOP_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
