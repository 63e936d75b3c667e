"""An in-process informer over the apiserver's own registry.

Authorizers decide on every request and cannot ask etcd each time: like
kube-apiserver's RBAC and Node authorizers, they read caches that list once
and then follow the watch. Changes land within milliseconds of the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from api.resources import ResourceInfo

from ..registry import PROGRESS, ListOptions, Registry

log = logging.getLogger("skiff.apiserver.authz")

Handler = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None]


def key_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


class ObjectCache:
    """`keep`: what of each object the cache holds (all of it by default); the pod
    cache keeps what the Node authorizer and token checks read, not every pod whole."""

    def __init__(
        self,
        registry: Registry,
        info: ResourceInfo,
        keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.registry = registry
        self.info = info
        self.keep = keep
        self.items: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.handlers: list[Handler] = []
        self.generation = 0  # counts changes, so readers can tell their derived data is stale
        self.revision = 0  # the newest etcd revision applied
        self._advanced = asyncio.Event()  # set (and replaced) whenever `revision` moves
        self._task: asyncio.Task[None] | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        return self.items.get(key)

    def values(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def in_namespace(self, namespace: str) -> list[dict[str, Any]]:
        prefix = f"{namespace}/"
        return [v for k, v in self.items.items() if k.startswith(prefix)]

    async def reached(self, revision: int, seconds: float) -> None:
        """Wait (at most `seconds`) until this cache has applied the change at `revision`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.revision < revision:
            left = deadline - loop.time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), left)

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
            self._advanced.set()
            self._advanced = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"authz-cache-{self.info.plural}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _set(self, key: str, obj: dict[str, Any] | None) -> None:
        self.generation += 1
        old = self.items.get(key)
        if obj is None:
            self.items.pop(key, None)
        else:
            self.items[key] = obj
        for handler in self.handlers:
            try:
                handler(key, old, obj)
            except Exception:
                log.exception("cache handler failed")

    async def _run(self) -> None:
        while True:
            fresh: dict[str, dict[str, Any]] = {}
            listing = True
            try:
                async for event, obj in self.registry.watch(self.info, "", ListOptions(), ""):
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or "0"
                    if listing:
                        if event == PROGRESS:
                            listing = False
                            for key in set(self.items) - set(fresh):
                                self._set(key, None)
                            for key, value in fresh.items():
                                self._set(key, value)
                            self._advance(int(rv))
                            self.synced.set()
                        else:
                            fresh[key_of(obj)] = self.keep(obj) if self.keep else obj
                        continue
                    if event != PROGRESS:
                        kept = None if event == "DELETED" else self.keep(obj) if self.keep else obj
                        self._set(key_of(obj), kept)
                    self._advance(int(rv))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("cache of %s restarts: %s", self.info.plural, e)
            await asyncio.sleep(0.5)
