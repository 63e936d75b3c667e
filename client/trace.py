"""The reconcile trace: what each loop saw, wanted and did, readable through the API.

Each component process keeps the last N records of reconciles that acted in a
ring (`collections.deque`) and one background task writes them to a few
ConfigMaps in `kube-system`, all labelled `skiff.io/trace=true`:

- the head, `skiff-trace-<component>`, holds the newest records (at most a
  shard's worth); it is the only object rewritten while records trickle in;
- when the head fills, its records are sealed into one of `SHARDS - 1` shards,
  `skiff-trace-<k>-<component>` (k cycling 0, 1, 2: the oldest is overwritten),
  written once, and the head starts empty again. The digit comes first because
  no component name starts with one, while node names (in `kubelet-<node>`)
  may end in `-0`: `skiff-trace-kubelet-w1-0` would be node `w1-0`'s head.

Flushes are coalesced: the first record after a quiet spell is written at
once, then at most one flush every `FLUSH_SECONDS` however busy the loops are,
and `stop()` flushes what is left. So a busy component costs etcd (and every
ConfigMap watcher) one small write per few seconds instead of rewriting a
512 KB ring twice a second, and the bound stays fixed: SHARDS objects per
component, each under MAX_BYTES / SHARDS. Reconciles that decided nothing are
counted, not kept.

`TraceReader` is the other side: `skiff trace`, `skiff explain` and the web
view list and watch those ConfigMaps, merge each component's shards by
`seq`, and yield the records they have not seen yet. See
docs/architecture.md, "Seeing the loops".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import json
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors, jsoncodec
from .rest import Client

log = logging.getLogger("skiff.trace")

NAMESPACE = "kube-system"
LABEL = "skiff.io/trace"
PREFIX = "skiff-trace-"
CAPACITY = int(os.environ.get("SKIFF_TRACE_RECORDS", "200"))
MAX_BYTES = 512 * 1024  # all shards of one component together; well under 1 MiB each
SHARDS = 4  # the head plus three sealed shards
SHARD_LABEL = "skiff.io/trace-shard"
FLUSH_SECONDS = float(os.environ.get("SKIFF_TRACE_FLUSH_SECONDS", "2"))


def shard_name(component: str, k: int) -> str:
    """Sealed shard k of a component (apiserver/authz/node.py grants nodes these too)."""
    return f"{PREFIX}{k}-{component}"


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decider_name(fn: Any) -> str:
    """`module:function`, so a reader can open the code that decided."""
    if fn is None:
        return ""
    if isinstance(fn, str):
        return fn
    return f"{fn.__module__}:{fn.__qualname__}"


@dataclass
class Record:
    """One reconcile that acted, being filled in while it runs."""

    component: str
    controller: str
    kind: str
    namespace: str
    name: str
    decide: str
    observed: str = ""
    wanted: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)
    # What the decision saw, for `skiff explain`; a callable is called only if the record
    # is ever written (a burst makes more records than the ring keeps until its flush).
    details: dict[str, Any] | Callable[[], dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    time: str = field(default_factory=_stamp)
    outcome: str = "done"

    def as_dict(self, seq: int, duration_ms: float | None = None) -> dict[str, Any]:
        if duration_ms is None:
            duration_ms = round((time.perf_counter() - self.started) * 1000, 2)
        out: dict[str, Any] = {
            "seq": seq,
            "time": self.time,
            "component": self.component,
            "controller": self.controller,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "observed": self.observed,
            "wanted": self.wanted,
            "actions": self.actions,
            "durationMs": duration_ms,
            "outcome": self.outcome,
            "decide": self.decide,
        }
        details = self.details() if callable(self.details) else self.details
        if details:
            out["details"] = details
        return out


class _Kept:
    """A finished record in the ring, turned into its dict only when someone reads it
    (a flush, a test): at 300 pods a second most records leave the ring unread."""

    __slots__ = ("_as_dict", "duration_ms", "record", "seq")

    def __init__(self, record: Record, seq: int) -> None:
        self.record: Record | None = record
        self.seq = seq
        self.duration_ms = round((time.perf_counter() - record.started) * 1000, 2)
        self._as_dict: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        if self._as_dict is None:
            assert self.record is not None
            self._as_dict = self.record.as_dict(self.seq, self.duration_ms)
            self.record = None  # what it held (a decision's verdicts) can go
        return self._as_dict


# The records a Controller worker's current reconcile has begun; the worker
# finishes them with the outcome once reconcile returns (see client/controller.py).
current_reconcile: contextvars.ContextVar[list[Record] | None] = contextvars.ContextVar(
    "current_reconcile", default=None
)


class Tracer:
    """The ring of one component process, written to its ConfigMap in the background."""

    def __init__(
        self,
        client: Client | None,
        component: str,
        *,
        capacity: int = CAPACITY,
        enabled: bool | None = None,
        verbose: bool | None = None,
    ) -> None:
        self.client = client
        self.component = component
        self.name = PREFIX + component
        self.enabled = os.environ.get("SKIFF_TRACE", "1") != "0" if enabled is None else enabled
        self.verbose = (
            os.environ.get("SKIFF_TRACE_VERBOSE", "0") == "1" if verbose is None else verbose
        )
        self._ring: deque[_Kept] = deque(maxlen=capacity)
        self.counts: dict[str, dict[str, int]] = {}
        self.seq = 0
        self.started = _stamp()
        # A shard holds this many records; the head is sealed when it has more.
        self.shard_records = max(1, -(-capacity // SHARDS))
        self.sealed = 0  # the last seq written into a sealed shard
        self.next_shard = 0  # which sealed shard the next seal overwrites
        self.writes = 0  # ConfigMap writes made, for tests and benchmarks
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def begin(
        self,
        controller: str,
        obj: dict[str, Any] | None,
        *,
        decide: Any = None,
        observed: str = "",
        wanted: str = "",
        kind: str = "",
        namespace: str = "",
        name: str = "",
    ) -> Record:
        meta = (obj or {}).get("metadata") or {}
        return Record(
            component=self.component,
            controller=controller,
            kind=kind or (obj or {}).get("kind", ""),
            namespace=namespace or meta.get("namespace", ""),
            name=name or meta.get("name", ""),
            decide=decider_name(decide),
            observed=observed,
            wanted=wanted,
        )

    def finish(self, record: Record) -> None:
        """Keep the record if it acted (or tracing is verbose); count it either way."""
        acted = bool(record.actions) or record.outcome.startswith("error")
        counts = self.counts.setdefault(record.controller, {"acted": 0, "noop": 0})
        counts["acted" if acted else "noop"] += 1
        if not self.enabled or not (acted or self.verbose):
            return
        self.seq += 1
        self._ring.append(_Kept(record, self.seq))
        self._dirty.set()

    @property
    def records(self) -> list[dict[str, Any]]:
        """The ring's records, oldest first."""
        return [k.as_dict() for k in self._ring]

    def _unsealed(self) -> list[dict[str, Any]]:
        return [k.as_dict() for k in self._ring if k.seq > self.sealed]

    def count_noop(self, controller: str) -> None:
        self.counts.setdefault(controller, {"acted": 0, "noop": 0})["noop"] += 1

    # -- writing the ConfigMap ------------------------------------------------------

    def _shard_body(self, name: str, shard: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        text = jsoncodec.dumps(records).decode()
        while len(text) > MAX_BYTES // SHARDS and records:
            records = records[len(records) // 4 or 1 :]  # drop the oldest quarter
            text = jsoncodec.dumps(records).decode()
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {LABEL: "true", SHARD_LABEL: shard},
            },
            "data": {
                "component": self.component,
                "started": self.started,
                "seq": str(self.seq),
                "records": text,
                "counts": json.dumps(self.counts, sort_keys=True),
            },
        }

    def body(self) -> dict[str, Any]:
        """The head: the records not yet sealed into a shard (at most a shard's worth)."""
        head = self._unsealed()[-self.shard_records :]
        return self._shard_body(self.name, "head", head)

    def plan(self) -> list[dict[str, Any]]:
        """The ConfigMaps one flush writes, in order: any shards sealed now, then the head.

        Sealed shards go first so a reader never sees a record vanish from the head
        before it is in a shard. Records that overflowed the ring between two
        flushes are gone (the ring is the bound), not written.
        """
        pending = self._unsealed()
        out: list[dict[str, Any]] = []
        while len(pending) > self.shard_records:  # the head never goes empty
            chunk, pending = pending[: self.shard_records], pending[self.shard_records :]
            k = self.next_shard
            self.next_shard = (k + 1) % (SHARDS - 1)
            self.sealed = chunk[-1]["seq"]
            out.append(self._shard_body(shard_name(self.component, k), str(k), chunk))
        out.append(self._shard_body(self.name, "head", pending))
        return out

    async def _write(self, body: dict[str, Any]) -> None:
        assert self.client is not None
        name = body["metadata"]["name"]
        self.writes += 1
        try:
            await self.client.patch("v1", "ConfigMap", NAMESPACE, name, body)
        except errors.NotFound:
            with contextlib.suppress(errors.AlreadyExists):
                await self.client.create(body)

    async def flush(self) -> None:
        if self.client is None:
            return
        for body in self.plan():
            await self._write(body)

    def start(self) -> None:
        if self.enabled and self.client is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"trace {self.component}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            with contextlib.suppress(Exception):
                await self.flush()

    async def _run(self) -> None:
        """Write at once after a quiet spell, then at most once every FLUSH_SECONDS."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the trace is a report, never part of the work
                log.warning("could not write the trace %s: %s", self.name, e)
            await asyncio.sleep(FLUSH_SECONDS)


# -- reading ------------------------------------------------------------------------


def records_of(cm: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return list(json.loads((cm.get("data") or {}).get("records") or "[]"))
    except ValueError:
        return []


def matches(
    record: dict[str, Any],
    *,
    kind: str = "",
    name: str = "",
    component: str = "",
    namespace: str = "",
) -> bool:
    if kind and record.get("kind", "").lower() != kind.lower():
        return False
    if name and record.get("name") != name:
        return False
    if component and component not in (record.get("component"), record.get("controller")):
        return False
    return not namespace or record.get("namespace") in (namespace, "")


def merge(configmaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record of these trace ConfigMaps (heads and sealed shards), each once.

    A record is known by (component, started, seq): a shard being sealed can
    briefly hold what the head still shows, and a restarted component counts
    seq from 1 again. Oldest first.
    """
    seen: dict[tuple[str, str, int], dict[str, Any]] = {}
    for cm in configmaps:
        data = cm.get("data") or {}
        component = data.get("component") or cm["metadata"]["name"]
        started = data.get("started", "")
        for r in records_of(cm):
            seen.setdefault((component, started, int(r.get("seq", 0))), r)
    return [seen[k] for k in sorted(seen, key=lambda k: (seen[k].get("time", ""), k))]


class TraceReader:
    """Records from every component's trace ConfigMaps, each once, oldest first."""

    def __init__(self, client: Client) -> None:
        self.client = client
        # (component, started) -> the last seq yielded. A shard sealed after its
        # records were read from the head holds only seqs at or below it.
        self._seen: dict[tuple[str, str], int] = {}

    def _new(self, cm: dict[str, Any]) -> list[dict[str, Any]]:
        data = cm.get("data") or {}
        key = (data.get("component") or cm["metadata"]["name"], data.get("started", ""))
        last = self._seen.get(key, 0)
        fresh = sorted(
            (r for r in records_of(cm) if int(r.get("seq", 0)) > last),
            key=lambda r: int(r.get("seq", 0)),
        )
        if fresh:
            self._seen[key] = int(fresh[-1].get("seq", last))
        return fresh

    async def snapshot(self) -> tuple[list[dict[str, Any]], str]:
        items, rv = await self.client.list(
            "v1", "ConfigMap", NAMESPACE, label_selector=f"{LABEL}=true"
        )

        # Shards in seq order within each component, so the per-component "last
        # seen" only moves forward and no record of an older shard is skipped.
        def order(cm: dict[str, Any]) -> tuple[str, str, int]:
            data = cm.get("data") or {}
            first = records_of(cm)[:1]
            return (
                data.get("component") or cm["metadata"]["name"],
                data.get("started", ""),
                int(first[0].get("seq", 0)) if first else 1 << 62,
            )

        out: list[dict[str, Any]] = []
        for cm in sorted(items, key=order):
            out += self._new(cm)
        out.sort(key=lambda r: r.get("time", ""))
        return out, rv

    async def follow(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        rv = resource_version
        while True:
            try:
                async for etype, cm in self.client.watch(
                    "v1",
                    "ConfigMap",
                    NAMESPACE,
                    resource_version=rv,
                    label_selector=f"{LABEL}=true",
                ):
                    if etype == "BOOKMARK":
                        rv = cm["metadata"].get("resourceVersion", rv)
                        continue
                    rv = cm["metadata"].get("resourceVersion", rv)
                    if etype in ("ADDED", "MODIFIED"):
                        for record in self._new(cm):
                            yield record
            except errors.Gone:
                fresh, rv = await self.snapshot()
                for record in fresh:
                    yield record
