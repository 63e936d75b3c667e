"""The reconcile trace: what each loop saw, wanted and did, readable through the API.

Each component process keeps the last N records of reconciles that acted in a
ring (`collections.deque`) and one background task writes the ring to one
ConfigMap, `kube-system/skiff-trace-<component>`, at most every half second
and only when something new was recorded. That keeps the cost bounded twice:
etcd holds one object per component however busy the cluster is, and the
loops themselves only append to a deque (the write rate does not grow with
the reconcile rate). Reconciles that decided nothing are counted, not kept.

`TraceReader` is the other side: `skiff trace`, `skiff explain` and the web
view list and watch those ConfigMaps and yield the records they have not
seen yet. See docs/architecture.md, "Seeing the loops".
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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .rest import Client

log = logging.getLogger("skiff.trace")

NAMESPACE = "kube-system"
LABEL = "skiff.io/trace"
PREFIX = "skiff-trace-"
CAPACITY = int(os.environ.get("SKIFF_TRACE_RECORDS", "200"))
MAX_BYTES = 512 * 1024  # well under a ConfigMap's 1 MiB
FLUSH_SECONDS = 0.5


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
    details: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    time: str = field(default_factory=_stamp)
    outcome: str = "done"

    def as_dict(self, seq: int) -> dict[str, Any]:
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
            "durationMs": round((time.perf_counter() - self.started) * 1000, 2),
            "outcome": self.outcome,
            "decide": self.decide,
        }
        if self.details:
            out["details"] = self.details
        return out


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
        self.records: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.counts: dict[str, dict[str, int]] = {}
        self.seq = 0
        self.started = _stamp()
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
        self.records.append(record.as_dict(self.seq))
        self._dirty.set()

    def count_noop(self, controller: str) -> None:
        self.counts.setdefault(controller, {"acted": 0, "noop": 0})["noop"] += 1

    # -- writing the ConfigMap ------------------------------------------------------

    def body(self) -> dict[str, Any]:
        records = list(self.records)
        text = json.dumps(records, separators=(",", ":"))
        while len(text) > MAX_BYTES and records:
            records = records[len(records) // 4 or 1 :]  # drop the oldest quarter
            text = json.dumps(records, separators=(",", ":"))
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": NAMESPACE, "labels": {LABEL: "true"}},
            "data": {
                "component": self.component,
                "started": self.started,
                "seq": str(self.seq),
                "records": text,
                "counts": json.dumps(self.counts, sort_keys=True),
            },
        }

    async def flush(self) -> None:
        if self.client is None:
            return
        body = self.body()
        try:
            await self.client.patch("v1", "ConfigMap", NAMESPACE, self.name, body)
        except errors.NotFound:
            with contextlib.suppress(errors.AlreadyExists):
                await self.client.create(body)

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


class TraceReader:
    """Records from every component's trace ConfigMap, each once, oldest first."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._seen: dict[str, tuple[str, int]] = {}  # configmap -> (started, last seq)

    def _new(self, cm: dict[str, Any]) -> list[dict[str, Any]]:
        name = cm["metadata"]["name"]
        started = (cm.get("data") or {}).get("started", "")
        was_started, last = self._seen.get(name, ("", 0))
        if started != was_started:
            last = 0  # the component restarted: its seq began again
        fresh = [r for r in records_of(cm) if int(r.get("seq", 0)) > last]
        if fresh:
            last = int(fresh[-1].get("seq", last))
        self._seen[name] = (started, last)
        return fresh

    async def snapshot(self) -> tuple[list[dict[str, Any]], str]:
        items, rv = await self.client.list(
            "v1", "ConfigMap", NAMESPACE, label_selector=f"{LABEL}=true"
        )
        out: list[dict[str, Any]] = []
        for cm in items:
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
