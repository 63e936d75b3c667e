"""A watch as an HTTP response: newline-delimited JSON events, until told to stop.

The stream ends when the client goes away, when `timeoutSeconds` passes, or
with an ERROR event carrying a `Status` (410 Gone for a compacted
resourceVersion). With `allowWatchBookmarks` the client also gets BOOKMARK
events — an object with only a resourceVersion — so it can resume from a
recent point even when nothing it watches has changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from api.resources import ResourceInfo

from . import jsoncodec, metrics, responses
from .errors import ApiError, internal
from .registry import PROGRESS, ListOptions, Registry
from .watch import WatcherOverflow

log = logging.getLogger("skiff.apiserver.watch")

BOOKMARK_INTERVAL = 60.0  # seconds between bookmarks, kube-apiserver's cadence
DEFAULT_TIMEOUT = 1800.0  # a watch without timeoutSeconds ends after 30 min (1800-3600 in k8s)


@dataclass
class WatchRequest:
    info: ResourceInfo
    namespace: str
    options: ListOptions
    resource_version: str
    timeout: float = DEFAULT_TIMEOUT
    bookmarks: bool = False
    initial_events_end: bool = False  # sendInitialEvents=true: mark where the initial list ends
    scope: str = "cluster"  # for metrics: cluster, namespace or resource
    table: str = ""  # includeObject mode when the client wants Table rows, else ""


# The last event lines made, by object: 100 watchers of one resource get the same
# event, encoded once. Each entry holds its object, so the id cannot be reused
# while the entry lives.
_RECENT_LINES: OrderedDict[int, tuple[dict[str, Any], str, bytes]] = OrderedDict()
RECENT_LINES_KEPT = 256


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    entry = _RECENT_LINES.get(id(obj))
    if entry is not None and entry[0] is obj and entry[1] == event_type:
        return entry[2]
    line = jsoncodec.dumps({"type": event_type, "object": obj}) + b"\n"
    _RECENT_LINES[id(obj)] = (obj, event_type, line)
    if len(_RECENT_LINES) > RECENT_LINES_KEPT:
        _RECENT_LINES.popitem(last=False)
    return line


def _bookmark(info: ResourceInfo, revision: int, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta}


async def stream(registry: Registry, req: WatchRequest) -> AsyncIterator[bytes]:
    """The body of a watch response.

    `last` is the newest revision up to which this watcher has been told
    everything; bookmarks carry it, so resuming from a bookmark loses nothing.
    """
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | BaseException | None] = asyncio.Queue(
        maxsize=1000
    )

    async def pump() -> None:
        try:
            async for event in registry.watch(
                req.info, req.namespace, req.options, req.resource_version
            ):
                await queue.put(event)
        except BaseException as e:  # handed to the writer, which decides what the client sees
            await queue.put(e)

    task = asyncio.create_task(pump(), name="watch pump")
    watch_labels = ("WATCH", req.info.group, req.info.version, req.info.plural, req.scope)
    metrics.WATCHES.labels(*watch_labels).inc()
    last = int(req.resource_version) if req.resource_version.isdigit() else 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.timeout
    next_bookmark = loop.time() + BOOKMARK_INTERVAL
    first_table = True
    initial_pending = req.initial_events_end and req.resource_version in ("", "0")
    try:
        while True:
            now = loop.time()
            if now >= deadline:
                if req.bookmarks:
                    yield _line("BOOKMARK", _bookmark(req.info, last))
                return
            wait = deadline - now
            if req.bookmarks:
                wait = min(wait, max(next_bookmark - now, 0.0))
            try:
                item = await asyncio.wait_for(queue.get(), timeout=wait)
            except TimeoutError:
                if req.bookmarks and loop.time() >= next_bookmark:
                    next_bookmark = loop.time() + BOOKMARK_INTERVAL
                    yield _line("BOOKMARK", _bookmark(req.info, last))
                continue
            if isinstance(item, ApiError):
                yield _line("ERROR", item.status())
                return
            if isinstance(item, WatcherOverflow):
                return  # the client resumes from its last resourceVersion
            if isinstance(item, BaseException):
                log.exception("watch failed", exc_info=item)
                yield _line("ERROR", internal(str(item)).status())
                return
            event_type, obj = item
            revision = int(obj.get("metadata", {}).get("resourceVersion") or 0)
            last = max(last, revision)
            if event_type == PROGRESS:
                if initial_pending:
                    # The first progress mark follows the initial list: tell
                    # a sendInitialEvents client that its list is complete.
                    initial_pending = False
                    yield _line("BOOKMARK", _bookmark(req.info, last, True))
                continue
            if req.table:
                rows = responses.table(req.info, [obj], req.table)
                if not first_table:
                    rows["columnDefinitions"] = []
                first_table = False
                obj = rows
            yield _line(event_type, obj)
    finally:
        metrics.WATCHES.labels(*watch_labels).dec()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
