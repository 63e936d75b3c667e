"""The scheduling queue: active pods by priority then age, backoff, and the unschedulable.

- activeQ: ready to try now, highest `spec.priority` first, then oldest.
- backoff: a pod that failed waits 1 s, doubling per attempt up to 10 s.
- unschedulable: pods no node could take wait here until something changes
  that could help (a node added or changed, a pod deleted), then move back.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0


class SchedulingQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[int, float, int, str]] = []
        self._queued: set[str] = set()
        self._pods: dict[str, dict[str, Any]] = {}
        self._attempts: dict[str, int] = {}
        self.unschedulable: set[str] = set()
        self._counter = itertools.count()
        self._wake = asyncio.Event()

    def add(self, key: str, pod: dict[str, Any]) -> None:
        self._pods[key] = pod
        self.unschedulable.discard(key)
        if key in self._queued:
            return
        priority = int((pod.get("spec") or {}).get("priority") or 0)
        created = pod["metadata"].get("creationTimestamp") or ""
        age = time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) if created else 0.0
        heapq.heappush(self._heap, (-priority, age, next(self._counter), key))
        self._queued.add(key)
        self._wake.set()

    def update(self, key: str, pod: dict[str, Any]) -> None:
        self._pods[key] = pod

    def delete(self, key: str) -> None:
        self._pods.pop(key, None)
        self._queued.discard(key)
        self.unschedulable.discard(key)
        self._attempts.pop(key, None)

    async def pop(self) -> tuple[str, dict[str, Any]]:
        while True:
            while self._heap:
                _, _, _, key = heapq.heappop(self._heap)
                if key in self._queued:
                    self._queued.discard(key)
                    pod = self._pods.get(key)
                    if pod is not None:
                        return key, pod
            self._wake.clear()
            await self._wake.wait()

    def backoff(self, key: str) -> float:
        attempts = self._attempts.get(key, 0)
        return min(INITIAL_BACKOFF * 2**attempts, MAX_BACKOFF)

    def requeue_after_failure(self, key: str, *, unschedulable: bool) -> None:
        """After a failed attempt: to the unschedulable set, or back after a backoff."""
        delay = self.backoff(key)
        self._attempts[key] = self._attempts.get(key, 0) + 1
        if unschedulable:
            self.unschedulable.add(key)
            # Also retried on a timer, in case the event that would help is missed.
            asyncio.get_running_loop().call_later(60.0, self._retry, key)
        else:
            asyncio.get_running_loop().call_later(delay, self._retry, key)

    def _retry(self, key: str) -> None:
        pod = self._pods.get(key)
        if pod is not None:
            self.add(key, pod)

    def move_all_unschedulable(self, only: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Something changed that could help: try the unschedulable pods again after
        backoff; `only` picks the pods the change can help (kube-scheduler's hints)."""
        loop = asyncio.get_running_loop()
        for key in list(self.unschedulable):
            pod = self._pods.get(key)
            if only is not None and (pod is None or not only(pod)):
                continue
            self.unschedulable.discard(key)
            loop.call_later(min(self.backoff(key), 1.0), self._retry, key)

    def done(self, key: str) -> None:
        self._attempts.pop(key, None)
