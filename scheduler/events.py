"""The scheduler's Events, written off the binding path, as client-go's broadcaster does.

kube-scheduler's recorder puts each Event on a queue and returns; one background
goroutine writes them to the API in order (correlated: a repeat bumps `count`),
and when the queue is full the newest are dropped with a log line. Here the same:
a binding slot is freed as soon as the binding is written, not after its
`Scheduled` Event too, and a burst of pods does not double the write rate the
bindings see: the Events trail behind, written one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from client.events import EventRecorder

log = logging.getLogger("skiff.scheduler")
QUEUE_SIZE = 1000  # client-go's incoming queue length for its event broadcaster
DRAIN_ON_STOP_SECONDS = 2.0


class QueuedRecorder(EventRecorder):
    """An EventRecorder whose `event()` only queues; `start()` begins the writer."""

    def __init__(self, *args: Any, queue_size: int = QUEUE_SIZE, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, str]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    async def event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait((obj, event_type, reason, message))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "event queue full: dropping %s event on %s", reason, obj["metadata"].get("name")
            )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="scheduler events")

    async def _run(self) -> None:
        while True:
            obj, event_type, reason, message = await self._queue.get()
            await super().event(obj, event_type, reason, message)  # never raises
            self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued Event has been written (tests, shutdown)."""
        await self._queue.join()

    async def stop(self) -> None:
        """Write what is queued (for a moment at most), then stop the writer."""
        if self._task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.drain(), DRAIN_ON_STOP_SECONDS)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
