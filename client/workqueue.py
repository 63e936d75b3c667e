"""A work queue of keys, as client-go's rate-limited queue behaves.

- A key is in the queue at most once: adding it again while it waits is a no-op.
- A key is never handed to two workers at once: if it is added while a worker
  holds it, it is marked dirty and handed out again after `done`.
- A failing key comes back later and later (`add_rate_limited`): 5 ms doubling
  per failure up to 1000 s, until `forget` says it succeeded.
"""

from __future__ import annotations

import asyncio
from collections import deque

BASE_DELAY = 0.005
MAX_DELAY = 1000.0


class ShutDown(Exception):
    """The queue was shut down; workers stop."""


class WorkQueue:
    def __init__(self, *, base_delay: float = BASE_DELAY, max_delay: float = MAX_DELAY) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # waiting to be processed
        self._processing: set[str] = set()  # held by a worker now
        self._failures: dict[str, int] = {}
        self._ready = asyncio.Condition()
        self._timers: set[asyncio.TimerHandle] = set()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # handed out again by done()
        self._queue.append(key)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._ready:
            self._ready.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.add(key)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def backoff(self, key: str) -> float:
        """The delay the next failure of `key` will wait."""
        return min(self.base_delay * 2 ** self._failures.get(key, 0), self.max_delay)

    def add_rate_limited(self, key: str) -> None:
        delay = self.backoff(key)
        self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, delay)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        async with self._ready:
            while not self._queue:
                if self._shutting_down:
                    raise ShutDown()
                await self._ready.wait()
            key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            asyncio.get_running_loop().create_task(self._notify())

    async def shutdown(self) -> None:
        self._shutting_down = True
        for handle in self._timers:
            handle.cancel()
        async with self._ready:
            self._ready.notify_all()
