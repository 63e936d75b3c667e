"""Watch: every change after a resourceVersion, in order, shared between watchers.

kube-apiserver keeps a "watch cache" per resource: one etcd watch feeds a ring
buffer of recent events, and every client watch is served from that buffer.
skiff does the same, smaller:

- a `Hub` per stored resource (`/registry/pods/`) owns the one etcd watch on
  that prefix and a history of recent events, sized by time as kube-apiserver
  sizes its cache (the last 75 s, at least a few hundred, at most a hard cap).
  The history keeps each event as etcd sent it (the value bytes), not decoded:
  live watchers get the decoded change as it happens, and only a watcher that
  resumes from the history pays for decoding what it missed. Decoded, a pod's
  create and binding held ~75 KiB of history; as bytes, a few KiB;
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
  kube-apiserver's watch cache serves them (registry.py decides when). Like
  kube-apiserver's storeElement, each object is kept as bytes with what a
  list filter needs beside them (`Cached`): its JSON as a list item (the
  stored value with its resourceVersion, without kind/apiVersion, which are
  kept apart), its labels and its selectable fields. A list joins those bytes
  and filters on the labels and fields; a GET splices kind and apiVersion
  in front of the item (`Cached.json`), `.obj` decodes a fresh copy. Decoded,
  a bound pod held ~23 KiB and 54 objects the garbage collector walks; as
  bytes, ~4 KiB and one (bench/watch_cache.py). The object before a live
  change is the hub's element at that revision: a selector decides on its
  labels and fields, nothing is decoded a second time from etcd's prev_kv.
- a hub that has held many objects (`PACK_FROM`, 2,000) keeps their JSON
  compressed (raw deflate, with a preset dictionary: the first object the
  hub packed, `Packer`), from then on, and its history records too. Objects
  of one kind are alike, so a bound pod's 3.3 KB becomes ~130 bytes; reading
  one back costs ~2.5 µs, which a list of 10,000 pods (~1 s over HTTP)
  hardly notices and a small cache (a list of 1,000 ConfigMaps, ~2 ms)
  never pays;
- history that ages out is freed in bulk, below newer allocations, where glibc
  keeps it resident: after enough of it, the heap is trimmed (`malloc_trim`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import sys
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aetcd import rpc

from api import fields, resources
from api.interning import SHORT, interned
from api.resources import ResourceInfo

from . import jsoncodec
from .sorted_keys import SortedKeys
from .storage import CompactedError, CorruptObjectError, Store, decode_checked
from .workers import trim_heap

log = logging.getLogger("skiff.apiserver.watch")

# The history per resource for resuming watchers: kube-apiserver's watch cache keeps
# the events of the last 75 s (eventFreshDuration), between a floor and a cap.
HISTORY_WINDOW = 75.0  # seconds of events kept
HISTORY_MIN = 300  # kept however old, so a quiet resource can still be resumed
HISTORY_MAX = 10_000  # kept at most, however fast events come
FILL_PAGE = 500  # keys per etcd range while a hub lists its prefix
QUEUE_LIMIT = 20_000  # events buffered per watcher before it is ended
# Objects in a hub from which it keeps their JSON compressed. The environment may
# lower it (tests run the cache's reads packed from the first object).
PACK_FROM = int(os.environ.get("SKIFF_WATCH_PACK_FROM", "2000"))
PACK_MIN = 200  # bytes: a smaller item is kept as it is
# bytes: nor a larger one (a few big objects, rewritten often, as the trace ConfigMaps
# are: compressing 512 KB twice a second per worker costs more than it saves)
PACK_MAX = 64 * 1024
ZDICT_MAX = 16 * 1024  # the window (WINDOW_BITS): a longer dictionary's start is never used
# After this many bytes of history dropped (by all hubs; packed, when packed: some
# thousands of events, whose requests and decoded objects were freed too), and at
# most this often, the C heap's free pages go back to the kernel (workers.trim_heap,
# 1-10 ms).
TRIM_AFTER_BYTES = 1024 * 1024
TRIM_EVERY = 10.0  # seconds


class _Trim:
    """How much history all hubs dropped since the heap was last trimmed."""

    dropped = 0
    last = 0.0


def _dropped(size: int) -> None:
    _Trim.dropped += size
    if _Trim.dropped >= TRIM_AFTER_BYTES:
        now = time.monotonic()
        if now - _Trim.last >= TRIM_EVERY:
            _Trim.dropped, _Trim.last = 0, now
            trim_heap()


@dataclass(slots=True)
class Change:
    """One etcd event, decoded: the object after (or, for DELETED, before) it.

    `prev` is the object before the change when it was decoded (a resumed
    watcher's replay, a watch served by etcd itself); a hub's live change has
    `before` instead, the hub's element at the previous revision, whose labels
    and fields are all a selector needs. `after` is the hub's element made
    from `obj` (its labels and fields), once the hub has stored it.
    """

    type: str  # ADDED, MODIFIED, DELETED
    key: str
    revision: int
    obj: dict[str, Any]
    prev: dict[str, Any] | None  # the object before the change, when decoded
    before: Cached | None = None  # the hub's element before the change, when it had one
    after: Cached | None = None  # the hub's element after it (not for DELETED)

    def had_before(self) -> bool:
        """Whether the object existed before this change, as far as is known."""
        return self.before is not None or self.prev is not None


_NO_HEAD: tuple[tuple[int, str, Any], ...] = ()
# The kind/apiVersion "heads" of cached objects: a few distinct ones, shared by all.
_HEADS: dict[tuple[tuple[int, str, Any], ...], tuple[tuple[int, str, Any], ...]] = {}
_TYPE_KEYS = ("apiVersion", "kind")
# Each such head as the start of an object's JSON: b'{"apiVersion":"v1","kind":"Pod"'.
_HEAD_JSON: dict[tuple[tuple[int, str, Any], ...], bytes] = {}


def _short(value: str) -> str:
    return sys.intern(value) if len(value) <= SHORT else value


def _kind_info(key: str, obj: dict[str, Any]) -> ResourceInfo | None:
    """The stored kind of `obj` (what the registry filters it as), by its own
    apiVersion and kind, else the first kind stored under its key's prefix."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    prefix = key[: key.index("/", len("/registry/")) + 1] if key.count("/") >= 3 else key
    if isinstance(api_version, str) and isinstance(kind, str):
        info = resources.by_kind(api_version, kind)
        if info is not None and f"/registry/{info.storage or info.plural}/" == prefix:
            return info
    for info in resources.all_resources():
        if f"/registry/{info.storage or info.plural}/" == prefix:
            return info
    return None


# Label sets as cached elements keep them, one dict per distinct set: the pods of one
# ReplicaSet have equal labels. Bounded: past the limit it starts afresh (what is
# already cached keeps sharing what it shares).
_LABEL_SETS: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
LABEL_SETS_MAX = 50_000


def _shared_labels(labels: Any) -> Any:
    """The one kept copy of this label set (never changed: selectors only read it)."""
    if not isinstance(labels, dict):
        return interned(labels)
    try:
        key = tuple(labels.items())
        kept = _LABEL_SETS.get(key)
    except TypeError:  # a value that is not hashable (not a string): kept as it is
        return interned(labels)
    if kept is None:
        if len(_LABEL_SETS) >= LABEL_SETS_MAX:
            _LABEL_SETS.clear()
        kept = _LABEL_SETS[key] = interned(labels)
    return kept


class Fields(Mapping[str, str]):
    """An element's selectable fields, small: their values in a tuple, their names
    (and each name's place) shared by every element of the kind. A dict per
    element held ~300 bytes for a pod's ten fields; this, ~170."""

    __slots__ = ("_at", "_values")
    # names -> {name: place}, one per distinct set of names (one or two per kind)
    _LAYOUTS: dict[tuple[str, ...], dict[str, int]] = {}

    def __init__(self, found: dict[str, str]) -> None:
        names = tuple(found)
        at = Fields._LAYOUTS.get(names)
        if at is None:
            at = Fields._LAYOUTS[names] = {name: i for i, name in enumerate(names)}
        self._at = at
        self._values = tuple(found.values())

    def __getitem__(self, name: str) -> str:
        return self._values[self._at[name]]

    def get(self, name: str, default: Any = None) -> Any:
        i = self._at.get(name)
        return default if i is None else self._values[i]

    def __contains__(self, name: object) -> bool:
        return name in self._at

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Fields({dict(self)!r})"


def selectable_fields(key: str, obj: dict[str, Any]) -> dict[str, str]:
    """The fields a field selector can choose `obj` by (api/fields.py), as the
    registry computes them for its kind; for a kind it does not know (a custom
    resource whose definition is gone), name and namespace."""
    info = _kind_info(key, obj)
    if info is not None:
        found = fields.field_labels(info, obj)
    else:
        meta = obj.get("metadata") or {}
        found = {"metadata.name": str(meta.get("name", ""))}
        if key.count("/") == 4:
            found["metadata.namespace"] = str(meta.get("namespace", ""))
    return {sys.intern(k): _short(v) for k, v in found.items()}


# Raw deflate (no zlib header, no checksum): unpacking a pod took 2.5 µs, not 5.7.
# A 16 KB window and memLevel 4, not zlib's 32 KB and 8: a compressor is made per
# item, and setting up the larger one cost more than compressing (packing a 5.6 KB
# pod took 74 µs, now 28), for the same 109 bytes out: a hub's objects are alike
# within far less than 16 KB of each other.
RAW_DEFLATE = -14
MEM_LEVEL = 4


def unpack(packed: bytes, zdict: bytes) -> bytes:
    """What `Packer.pack` packed with `zdict`."""
    return zlib.decompressobj(RAW_DEFLATE, zdict=zdict).decompress(packed)


class Packer:
    """How one hub compresses its objects' JSON: raw deflate with a preset dictionary,
    the first item it packed (the objects of a prefix are of one kind and alike, so
    most of an item is found in the dictionary: a bound pod, 3.3 KB, packs to ~130
    bytes). The dictionary never changes: each packed item keeps a reference to it
    (one shared bytes object), so it can always be read back."""

    def __init__(self) -> None:
        self.zdict: bytes | None = None

    def pack(self, item: bytes) -> tuple[bytes, bytes | None]:
        """(the bytes to keep, the dictionary they need; None: kept as they are)."""
        if not PACK_MIN <= len(item) <= PACK_MAX:
            return item, None
        if self.zdict is None:
            self.zdict = item[-ZDICT_MAX:]
        c = zlib.compressobj(6, zlib.DEFLATED, RAW_DEFLATE, MEM_LEVEL, zdict=self.zdict)
        packed = c.compress(item) + c.flush()
        if len(packed) >= len(item):
            return item, None
        return packed, self.zdict


class Cached:
    """One object of a hub's state, as kube-apiserver's watch cache keeps a
    storeElement: bytes, with what list filters need precomputed and small.

    `item` is the object's JSON as a list item: the stored value with its
    resourceVersion, without kind/apiVersion (a list joins these bytes as
    they are); kept compressed when the hub packed it (`zdict` is then the
    dictionary it was packed with). `head` puts kind and apiVersion back where
    the object had them when a GET decodes it. `labels` and `fields` are what
    label and field selectors match on. `obj` decodes a fresh copy at every
    access: callers may change it; read it once.
    """

    __slots__ = ("_item", "fields", "head", "labels", "revision", "zdict")

    def __init__(
        self,
        item: bytes,
        revision: int,
        labels: dict[str, str] | None,
        fields: Mapping[str, str],
        head: tuple[tuple[int, str, Any], ...] = _NO_HEAD,
        zdict: bytes | None = None,
    ) -> None:
        self._item = item
        self.zdict = zdict  # None: `_item` is the JSON itself
        self.revision = revision  # mod_revision: the object's resourceVersion
        self.labels = labels
        self.fields = fields
        self.head = head

    @property
    def item(self) -> bytes:
        """The object's JSON as a list item (unpacked when the hub packed it)."""
        if self.zdict is None:
            return self._item
        return unpack(self._item, self.zdict)

    def pack(self, packer: Packer) -> None:
        """Keep the JSON compressed by `packer` (once; a packed element stays so)."""
        if self.zdict is None:
            self._item, self.zdict = packer.pack(self._item)

    @classmethod
    def of(
        cls, key: str, obj: dict[str, Any], revision: int, packer: Packer | None = None
    ) -> Cached:
        """The element for `obj` (decoded, with its resourceVersion; not changed),
        its JSON compressed by `packer` when there is one."""
        head_parts: list[tuple[int, str, Any]] = []
        rest: dict[str, Any] = {}
        for i, (k, v) in enumerate(obj.items()):
            if k in _TYPE_KEYS:
                head_parts.append((i, k, _short(v) if isinstance(v, str) else v))
            else:
                rest[k] = v
        head = tuple(head_parts)
        try:
            head = _HEADS.setdefault(head, head)
        except TypeError:  # a kind that is not a string (not hashable): kept as it is
            pass
        meta = obj.get("metadata")
        labels = meta.get("labels") if isinstance(meta, dict) else None
        # Copied to a bytes object of its own size: orjson's keeps the buffer it grew
        # (16 KiB held for a 2 KB object, by tracemalloc; sys.getsizeof does not see it).
        item = bytes(memoryview(jsoncodec.dumps(rest)))
        zdict = None
        if packer is not None:
            item, zdict = packer.pack(item)
        return cls(
            item,
            revision,
            _shared_labels(labels) if labels else None,
            Fields(selectable_fields(key, obj)),
            head,
            zdict,
        )

    @property
    def obj(self) -> dict[str, Any]:
        """The object, decoded afresh (with kind, apiVersion and resourceVersion)."""
        rest: dict[str, Any] = jsoncodec.loads(self.item)
        if not self.head:
            return rest
        if len(self.head) == 2 and self.head[0][0] == 0 and self.head[1][0] == 1:
            (_, k0, v0), (_, k1, v1) = self.head
            return {k0: v0, k1: v1, **rest}
        items = list(rest.items())
        for at, k, v in self.head:
            items.insert(at, (k, copy.deepcopy(v) if isinstance(v, dict | list) else v))
        return dict(items)

    def json(self) -> bytes:
        """The object's JSON, the bytes `jsoncodec.dumps(self.obj)` gives: kind and
        apiVersion spliced in front of the kept item when they lead the object (they
        do for every object the API wrote), else encoded from the decoded object."""
        prefix = _HEAD_JSON.get(self.head)
        if prefix is None:
            head = self.head
            if not (len(head) == 2 and head[0][0] == 0 and head[1][0] == 1):
                return jsoncodec.dumps(self.obj)
            if not all(isinstance(v, str) for _, _, v in head):
                return jsoncodec.dumps(self.obj)
            prefix = _HEAD_JSON[head] = jsoncodec.dumps({k: v for _, k, v in head})[:-1]
        item = self.item
        if item == b"{}":
            return prefix + b"}"
        return prefix + b"," + item[1:]

    def __repr__(self) -> str:
        packed = ", packed" if self.zdict is not None else ""
        return f"Cached(revision={self.revision}, {len(self._item)} bytes{packed})"


class WatcherOverflow(Exception):
    """The watcher fell too far behind and was dropped."""


def _stub_from_key(key: str) -> dict[str, Any]:
    """What a key says about its object: name and namespace (for a corrupt one)."""
    parts = key.split("/")
    meta = {"name": parts[-1]}
    if len(parts) == 5:
        meta["namespace"] = parts[3]
    return {"metadata": meta}


@dataclass(slots=True)
class Recorded:
    """One event in a hub's history, as etcd sent it: decoded only when replayed.

    `at` is when the hub saw it (monotonic), for sizing the history by time.
    When the previous value is the value of the key's previous record in the
    history, `prev_of` is that record and `prev_value` is not kept twice; both
    are dropped when the record leaves the history (nobody replays it then).
    """

    type: str  # ADDED, MODIFIED, DELETED
    key: str
    revision: int
    value: bytes  # the value after the change (empty for DELETED); packed when `zdict`
    prev_value: bytes | None  # the value before it, when etcd sent one
    prev_revision: int
    at: float
    prev_of: Recorded | None = None
    zdict: bytes | None = None  # the dictionary `value` was packed with (None: not packed)

    def current(self) -> bytes:
        """The value after the change, unpacked."""
        if self.zdict is None:
            return self.value
        return unpack(self.value, self.zdict)

    def pack(self, packer: Packer) -> None:
        """Keep the value compressed by `packer` (its hub packs its objects)."""
        if self.zdict is None and self.value:
            self.value, self.zdict = packer.pack(self.value)

    def previous(self) -> bytes | None:
        """The value before this change, when etcd sent one."""
        return self.prev_of.current() if self.prev_of is not None else self.prev_value

    def change(self) -> Change | None:
        """The change as a watcher gets it (None only if it no longer decodes)."""
        return _decode(
            self.type, self.key, self.revision, self.current(), self.previous(), self.prev_revision
        )


def _decode(
    kind: str,
    key: str,
    revision: int,
    value: bytes,
    prev_value: bytes | None,
    prev_revision: int,
    known: Cached | None = None,
) -> Change | None:
    """The decoded change. When `known` (a hub's element) is the previous
    revision it stands for the previous object: nothing is decoded from
    etcd's copy of it, but for a DELETED event, which carries that object."""
    prev = None
    before = None
    if prev_value is not None:
        if known is not None and known.revision == prev_revision:
            before = known
        else:
            try:
                prev = decode_checked(key, prev_value, prev_revision)
            except CorruptObjectError:
                prev = None  # already reported when it was written
    if kind == "DELETED":
        # The deleted object carries the deletion revision, as in Kubernetes.
        last = before.obj if before is not None else prev
        obj = dict(last) if last else _stub_from_key(key)
        obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(revision)}
        return Change("DELETED", key, revision, obj, prev, before)
    try:
        obj = decode_checked(key, value, revision)
    except CorruptObjectError as e:
        log.error("skipping a watch event that does not decode: %s", e)
        return None
    return Change(kind, key, revision, obj, prev, before)


def record_of(event: Any) -> Recorded:
    """An etcd event as the history keeps it: its type, key and value bytes."""
    kv = event.kv
    # etcd sends an empty KeyValue (not none) when there was no previous value.
    has_prev = event.prev_kv is not None and bool(event.prev_kv.key)
    if event.type == rpc.Event.DELETE:
        kind = "DELETED"
    else:
        kind = "ADDED" if kv.create_revision == kv.mod_revision else "MODIFIED"
    return Recorded(
        kind,
        kv.key.decode(errors="replace"),
        int(kv.mod_revision),
        b"" if kind == "DELETED" else kv.value,
        event.prev_kv.value if has_prev else None,
        int(event.prev_kv.mod_revision) if has_prev else 0,
        time.monotonic(),
    )


def change_from_event(event: Any, known: Cached | None = None) -> Change | None:
    """The decoded change, or None for a value that does not decode (logged).

    `known` is the object at the key as far as the caller knows it; it stands in
    for etcd's copy of the previous value when it is the same revision.
    """
    return _change_of(record_of(event), known)


def _change_of(record: Recorded, known: Cached | None) -> Change | None:
    return _decode(
        record.type,
        record.key,
        record.revision,
        record.current(),
        record.previous(),
        record.prev_revision,
        known,
    )


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
        self.history: deque[Recorded] = deque()
        self._newest: dict[str, Recorded] = {}  # key -> its newest record in `history`
        self.floor = 0  # every event after `floor` is in history or still coming
        self.latest = 0  # the newest revision this hub has seen for its prefix
        self.subscribers: set[Subscription] = set()
        # key -> object (as bytes, with its labels and fields): the prefix's state at `latest`
        self.objects: dict[str, Cached] = {}
        self.synced = False  # `objects` is complete (false while (re)listing)
        self._sorted: SortedKeys | None = None  # objects' keys in order, made at the first list
        self.packer = Packer()  # compresses the objects' JSON once there are PACK_FROM
        self.packing = False  # the hub has held PACK_FROM objects: it packs all it keeps
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
        objects: dict[str, Cached] = {}
        start_after = ""
        while True:
            page = await self.store.list(
                self.prefix, start_after=start_after, limit=FILL_PAGE, revision=revision
            )
            revision = page.revision
            for key, stored in zip(page.keys, page.items, strict=True):
                objects[key] = Cached.of(key, stored.obj, stored.revision)
                start_after = key
            if not page.more or not page.items:
                break
        self.objects, self._sorted = objects, None
        self.floor = self.latest = revision
        self.synced = True
        self._pack_if_many()

    def _pack_if_many(self) -> None:
        """Once the hub holds PACK_FROM objects: pack them and its history (once,
        ~15 µs each), and from then on everything it keeps."""
        if self.packing or len(self.objects) < PACK_FROM:
            return
        self.packing = True
        for cached in self.objects.values():
            cached.pack(self.packer)
        for record in self.history:
            record.pack(self.packer)

    def current(self, key: str) -> Cached | None:
        """The object at `key` as this hub last saw it (`.obj` decodes it, `.revision`)."""
        return self.objects.get(key)

    def keys_under(self, prefix: str) -> list[str]:
        """The keys under `prefix` (the hub's own, or a namespace's) in etcd's order."""
        if self._sorted is None:
            self._sorted = SortedKeys(self.objects)
        return self._sorted.all() if prefix == self.prefix else self._sorted.under(prefix)

    def _forget(self, key: str) -> None:
        if self.objects.pop(key, None) is not None and self._sorted is not None:
            self._sorted.discard(key)

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
                    record = record_of(event)
                    change = _change_of(record, self.objects.get(record.key))
                    if change is None:
                        # Not decodable: the state no longer holds the old value either.
                        self._forget(record.key)
                        self._advance(record.revision)
                        continue
                    self._publish(change, record)
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

    def _publish(self, change: Change, record: Recorded) -> None:
        history = self.history
        before = self._newest.get(record.key)
        if (
            before is not None
            and record.prev_value is not None
            and before.revision == record.prev_revision
            and before.type != "DELETED"
        ):
            record.prev_of, record.prev_value = before, None  # those bytes, once
        if self.packing:
            record.pack(self.packer)  # decoded already: read again only by a replay
        self._newest[record.key] = record
        history.append(record)
        # Older than the window (beyond the floor) or beyond the cap: dropped, and
        # a watch from before it is served by etcd (or answered 410) instead.
        while len(history) > HISTORY_MAX or (
            len(history) > HISTORY_MIN and record.at - history[0].at > HISTORY_WINDOW
        ):
            self._drop_oldest()
        if change.type == "DELETED":
            self._forget(change.key)
        else:
            if change.key not in self.objects and self._sorted is not None:
                self._sorted.add(change.key)
            change.after = self.objects[change.key] = Cached.of(
                change.key, change.obj, change.revision, self.packer if self.packing else None
            )
            self._pack_if_many()
        self._advance(change.revision)
        for sub in list(self.subscribers):
            sub.push(change)

    def _drop_oldest(self) -> None:
        """The oldest record leaves the history; a newer record may still read its value."""
        old = self.history.popleft()
        self.floor = old.revision
        _dropped(len(old.value) + len(old.prev_value or b""))
        old.prev_of = old.prev_value = None
        if self._newest.get(old.key) is old:
            del self._newest[old.key]

    def _reset(self, revision: int) -> None:
        gone = CompactedError(self.latest, revision)
        for sub in list(self.subscribers):
            sub.push(gone)
            sub.close()
        self.history.clear()
        self._newest.clear()
        self.floor = self.latest = revision

    def forget_before(self, revision: int) -> None:
        while self.history and self.history[0].revision <= revision:
            self._drop_oldest()
        self.floor = max(self.floor, revision)

    def subscribe(self, after: int) -> Subscription | None:
        """Subscribe from `after`, or None when history does not reach back that far."""
        if after < self.floor:
            return None
        sub = Subscription(self, after)
        # Watchers mostly start from a recent list, so walk back from the newest event:
        # scanning the whole history for each of 100 new watchers held up delivery.
        newer: list[Recorded] = []
        for record in reversed(self.history):
            if record.revision <= after:
                break
            newer.append(record)
        for record in reversed(newer):
            change = record.change()
            if change is not None:
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
