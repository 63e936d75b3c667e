"""Watch: every change after a resourceVersion, in order, shared between watchers.

kube-apiserver keeps a "watch cache" per resource: one etcd watch feeds a ring
buffer of recent events, and every client watch is served from that buffer.
skiff does the same, smaller:

- a `Hub` per stored resource (`/registry/pods/`) owns the one etcd watch on
  that prefix and a bounded history of decoded events;
- a watcher asking to start after revision X is served from the hub when the
  hub's history reaches back to X; otherwise it gets a dedicated etcd watch
  from X+1, which etcd answers with a compaction error when X is too old —
  that becomes the 410 Gone a client answers by relisting;
- a watcher that cannot keep up (its queue is full) is ended; like any
  client it resumes from the last resourceVersion it saw;
- a value that does not decode (not JSON, not an object of the key's kind) is
  logged and skipped: it costs that one object, never the stream — before,
  the hub retried the same revision forever and every watch of the resource
  went silent;
- when etcd goes away (killed, restarting), each hub re-establishes its watch
  with back-off and resumes after the last revision it saw, so watchers
  neither lose nor repeat events;
- each hub also keeps the current state of its prefix (`objects`): it lists
  the prefix at its start revision and applies every event after it, so the
  state is exactly etcd's at `latest`. Gets and lists are served from it as
  kube-apiserver's watch cache serves them (registry.py decides when).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aetcd import rpc

from . import jsoncodec
from .storage import CompactedError, CorruptObjectError, Store, Stored, decode_checked

log = logging.getLogger("skiff.apiserver.watch")

HISTORY = 10_000  # events kept per resource for resuming watchers
FILL_PAGE = 500  # keys per etcd range while a hub lists its prefix
QUEUE_LIMIT = 20_000  # events buffered per watcher before it is ended


@dataclass(frozen=True)
class Change:
    """One etcd event, decoded: the object after (or, for DELETED, before) it."""

    type: str  # ADDED, MODIFIED, DELETED
    key: str
    revision: int
    obj: dict[str, Any]
    prev: dict[str, Any] | None  # the object before the change, when known


class WatcherOverflow(Exception):
    """The watcher fell too far behind and was dropped."""


def _stub_from_key(key: str) -> dict[str, Any]:
    """What a key says about its object: name and namespace (for a corrupt one)."""
    parts = key.split("/")
    meta = {"name": parts[-1]}
    if len(parts) == 5:
        meta["namespace"] = parts[3]
    return {"metadata": meta}


def change_from_event(event: Any) -> Change | None:
    """The decoded change, or None for a value that does not decode (logged)."""
    kv = event.kv
    key = kv.key.decode(errors="replace")
    # etcd sends an empty KeyValue (not none) when there was no previous value.
    has_prev = event.prev_kv is not None and bool(event.prev_kv.key)
    prev = None
    if has_prev:
        try:
            prev = decode_checked(key, event.prev_kv.value, event.prev_kv.mod_revision)
        except CorruptObjectError:
            prev = None  # already reported when it was written
    if event.type == rpc.Event.DELETE:
        # The deleted object carries the deletion revision, as in Kubernetes.
        obj = dict(prev) if prev else _stub_from_key(key)
        obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(kv.mod_revision)}
        return Change("DELETED", key, kv.mod_revision, obj, prev)
    try:
        obj = decode_checked(key, kv.value, kv.mod_revision)
    except CorruptObjectError as e:
        log.error("skipping a watch event that does not decode: %s", e)
        return None
    kind = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
    return Change(kind, key, kv.mod_revision, obj, prev)


class Subscription:
    def __init__(self, hub: Hub, after: int) -> None:
        self.hub = hub
        self.after = after
        self.queue: asyncio.Queue[Change | BaseException] = asyncio.Queue()
        self.closed = False

    def push(self, item: Change | BaseException) -> None:
        if self.closed:
            return
        if isinstance(item, Change) and item.revision <= self.after:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.closed = True
            self.queue.put_nowait(WatcherOverflow())
            return
        self.queue.put_nowait(item)

    async def next(self) -> Change:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        self.after = item.revision
        return item

    def close(self) -> None:
        self.closed = True
        self.hub.subscribers.discard(self)


class Hub:
    """The one etcd watch of a resource prefix, fanned out to many watchers."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.history: deque[Change] = deque(maxlen=HISTORY)
        self.floor = 0  # every event after `floor` is in history or still coming
        self.latest = 0  # the newest revision this hub has seen for its prefix
        self.subscribers: set[Subscription] = set()
        self.objects: dict[str, Stored] = {}  # key -> object: the prefix's state at `latest`
        self.synced = False  # `objects` is complete (false while (re)listing)
        self._sorted: list[str] | None = None  # objects' keys in order, until the next change
        # Each object's JSON as a list item (no kind/apiVersion), made at its first list
        # and kept until it changes: a list from the cache joins bytes, encodes nothing.
        self.list_items: dict[str, bytes] = {}
        self._moved = asyncio.Event()  # set (and replaced) whenever `latest` moves
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def start(self, from_revision: int) -> None:
        try:
            try:
                await self._fill(from_revision)
            except CompactedError:
                await self._fill(0)  # the start revision is gone: the state as of now
        except CorruptObjectError as e:
            # A value that does not decode: watches still work, reads go to etcd.
            log.error("no cached state for %s: %s", self.prefix, e)
            self.objects, self.synced = {}, False
            self.floor = self.latest = from_revision
        self._task = asyncio.create_task(self._run(), name=f"watch {self.prefix}")
        await self._started.wait()

    async def _fill(self, revision: int) -> None:
        """List the prefix at `revision` (0: now) into `objects`, in pages at one revision."""
        self.synced = False
        objects: dict[str, Stored] = {}
        start_after = ""
        while True:
            page = await self.store.list(
                self.prefix, start_after=start_after, limit=FILL_PAGE, revision=revision
            )
            revision = page.revision
            for key, stored in zip(page.keys, page.items, strict=True):
                objects[key] = stored
                start_after = key
            if not page.more or not page.items:
                break
        self.objects, self._sorted, self.list_items = objects, None, {}
        self.floor = self.latest = revision
        self.synced = True

    def list_item(self, key: str) -> bytes:
        """The object at `key` as JSON for a list's `items` (lists carry no kind/apiVersion)."""
        encoded = self.list_items.get(key)
        if encoded is None:
            obj = self.objects[key].obj
            item = {k: v for k, v in obj.items() if k != "kind" and k != "apiVersion"}
            encoded = self.list_items[key] = jsoncodec.dumps(item)
        return encoded

    def sorted_keys(self) -> list[str]:
        """The keys in etcd's order (byte order), kept until the next add or delete."""
        if self._sorted is None:
            self._sorted = sorted(self.objects, key=str.encode)
        return self._sorted

    async def wait_for(self, revision: int, seconds: float) -> bool:
        """Wait until this hub has seen `revision`, or `seconds`: whether it has."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.latest < revision:
            left = deadline - loop.time()
            if left <= 0 or not await self.wait_moved(left):
                return self.latest >= revision
        return True

    async def wait_moved(self, seconds: float) -> bool:
        """Wait for the next event (or `seconds`): whether one came."""
        try:
            await asyncio.wait_for(self._moved.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _advance(self, revision: int) -> None:
        self.latest = max(self.latest, revision)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        """Follow etcd; on a broken stream resume after the last revision seen."""
        backoff, failures = 0.1, 0
        while True:
            try:
                self._started.set()
                async for event in self.store.watch(self.prefix, self.latest + 1):
                    backoff, failures = 0.1, 0
                    change = change_from_event(event)
                    if change is None:
                        # Not decodable: the state no longer holds the old value either.
                        key = event.kv.key.decode(errors="replace")
                        self.list_items.pop(key, None)
                        if self.objects.pop(key, None):
                            self._sorted = None
                        self._advance(int(event.kv.mod_revision))
                        continue
                    self._publish(change)
            except asyncio.CancelledError:
                raise
            except CompactedError as e:
                # We fell behind a compaction: nobody can be resumed from our
                # history any more. Tell every watcher to relist.
                log.warning("watch on %s compacted at %s; restarting", self.prefix, e.compacted)
                self._reset(e.compacted)
                try:
                    await self._fill(0)  # the state afresh; reads go to etcd meanwhile
                except Exception as fill_error:
                    log.warning("relisting %s failed (%s); retrying", self.prefix, fill_error)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
            except Exception as e:
                # While etcd is away every hub fails every 2 s: say it once a minute.
                failures += 1
                log.log(
                    logging.WARNING if failures % 30 == 1 else logging.DEBUG,
                    "watch on %s broke (%s); resuming after %d",
                    self.prefix,
                    e,
                    self.latest,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _publish(self, change: Change) -> None:
        if len(self.history) == self.history.maxlen:
            self.floor = self.history[0].revision
        self.history.append(change)
        self.list_items.pop(change.key, None)
        if change.type == "DELETED":
            if self.objects.pop(change.key, None) is not None:
                self._sorted = None
        else:
            if change.key not in self.objects:
                self._sorted = None
            self.objects[change.key] = Stored(change.obj, change.revision)
        self._advance(change.revision)
        for sub in list(self.subscribers):
            sub.push(change)

    def _reset(self, revision: int) -> None:
        gone = CompactedError(self.latest, revision)
        for sub in list(self.subscribers):
            sub.push(gone)
            sub.close()
        self.history.clear()
        self.floor = self.latest = revision

    def forget_before(self, revision: int) -> None:
        while self.history and self.history[0].revision <= revision:
            self.history.popleft()
        self.floor = max(self.floor, revision)

    def subscribe(self, after: int) -> Subscription | None:
        """Subscribe from `after`, or None when history does not reach back that far."""
        if after < self.floor:
            return None
        sub = Subscription(self, after)
        # Watchers mostly start from a recent list, so walk back from the newest event:
        # scanning the whole history for each of 100 new watchers held up delivery.
        newer: list[Change] = []
        for change in reversed(self.history):
            if change.revision <= after:
                break
            newer.append(change)
        for change in reversed(newer):
            sub.push(change)
        self.subscribers.add(sub)
        return sub


class WatchHubs:
    """All hubs of one apiserver, started lazily per resource prefix."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hubs: dict[str, Hub] = {}
        self._lock = asyncio.Lock()
        self.start_revision = 0
        self.compacted = 0  # the last revision skiff compacted etcd at

    async def hub(self, prefix: str) -> Hub:
        hub = self.hubs.get(prefix)
        if hub is None:
            async with self._lock:
                hub = self.hubs.get(prefix)
                if hub is None:
                    hub = Hub(self.store, prefix)
                    # From the server's start revision, so that any
                    # resourceVersion a client saw since start can resume here; a
                    # hub made later (a custom resource's) from no earlier than the
                    # last compaction, which etcd no longer has history before.
                    start = self.start_revision or await self.store.revision()
                    if self.compacted and start <= self.compacted:
                        start = await self.store.revision()
                    await hub.start(start)
                    self.hubs[prefix] = hub
        return hub

    async def stop(self) -> None:
        for hub in self.hubs.values():
            await hub.stop()

    def forget_before(self, revision: int) -> None:
        """etcd was compacted at `revision`: watches from before it now get 410."""
        self.compacted = max(self.compacted, revision)
        for hub in self.hubs.values():
            hub.forget_before(revision)

    def open_watches(self) -> int:
        return sum(len(h.subscribers) for h in self.hubs.values())

    async def changes(self, prefix: str, after: int) -> AsyncIterator[Change]:
        """Every change under `prefix` with revision > `after`, in order, forever.

        Raises CompactedError when `after` is older than etcd keeps.
        """
        hub = await self.hub(prefix)
        sub = hub.subscribe(after)
        if sub is not None:
            try:
                while True:
                    yield await sub.next()
            finally:
                sub.close()
            return
        # History does not reach back: a watch of our own, from etcd itself
        # (CompactedError, the 410, when etcd no longer has that revision).
        async for event in self.store.watch(prefix, after + 1):
            change = change_from_event(event)
            if change is not None:
                yield change


def event_line(event_type: str, obj: dict[str, Any]) -> bytes:
    return jsoncodec.dumps({"type": event_type, "object": obj}) + b"\n"
