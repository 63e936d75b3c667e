"""One shell for every loop: carry out a decision's actions the same way everywhere.

A loop's pure `decide(...)` returns actions; `apply()` performs them with the
loop's table of handlers (`{ActionType: handler}`, no `isinstance` ladders),
and around each one does what every loop owes its readers:

- waits at the loop control gate (slow motion, pause, step);
- hands the handler a `Step` whose `api` records every API call it makes;
- records the Events: the handler's own, or, when the action changed
  something (any write but a `status` write) and the handler named none, one
  Event named after the action, so no change goes unreported;
- fills the reconcile's trace record (action, calls, error) and finishes it.

See docs/architecture.md, "Seeing the loops".
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from . import errors
from .events import EventRecorder
from .loopcontrol import LoopControl
from .rest import Client
from .trace import Record, Tracer, current_reconcile


def describe(action: Any) -> str:
    """An action as a person reads it: `DeletePod(name='web-x')`, big fields elided."""
    if not dataclasses.is_dataclass(action):
        return repr(action)
    parts = []
    for f in dataclasses.fields(action):
        value = getattr(action, f.name)
        if isinstance(value, dict):
            meta = value.get("metadata") if isinstance(value.get("metadata"), dict) else None
            if meta is not None:
                text = (
                    f"{value.get('kind', 'object')} {meta.get('name') or meta.get('generateName')}"
                )
            else:
                text = "{" + ", ".join(sorted(value)[:6]) + ("…" if len(value) > 6 else "") + "}"
            parts.append(f"{f.name}=<{text}>")
        else:
            text = repr(value)
            parts.append(f"{f.name}={text if len(text) <= 80 else text[:77] + '...'}")
    return f"{type(action).__name__}({', '.join(parts)})"


def _target(api_version: str, kind: str, namespace: str, name: str = "", sub: str = "") -> str:
    where = "/".join(p for p in (namespace, name) if p)
    return f"{api_version} {kind} {where}".rstrip() + (f" ({sub})" if sub else "")


class RecordingApi:
    """The client's write verbs, noting each call for the trace; reads pass through."""

    def __init__(self, client: Client, calls: list[str]) -> None:
        self._client = client
        self.calls = calls
        self.changed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _note(self, text: str, *, status_only: bool = False) -> None:
        self.calls.append(text)
        if not status_only:
            self.changed = True

    async def _write(self, text: str, call: Awaitable[Any], *, status_only: bool = False) -> Any:
        """Note the call for the trace; it changed something only if it went through
        (a delete that met NotFound changed nothing and is worth no Event)."""
        self.calls.append(text)
        out = await call
        if not status_only:
            self.changed = True
        return out

    async def create(self, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        ns = kw.get("namespace") or meta.get("namespace", "")
        out = await self._client.create(obj, **kw)
        made = (out.get("metadata") or {}).get("name", "")
        self._note(f"POST {_target(obj['apiVersion'], obj['kind'], ns, made)}")
        return out

    async def create_subresource(
        self, api_version: str, kind: str, namespace: str, name: str, sub: str, body: Any
    ) -> dict[str, Any]:
        return await self._write(
            f"POST {_target(api_version, kind, namespace, name, sub)}",
            self._client.create_subresource(api_version, kind, namespace, name, sub, body),
        )

    async def update(self, obj: dict[str, Any], *, sub: str = "", **kw: Any) -> dict[str, Any]:
        meta = obj["metadata"]
        target = _target(
            obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"], sub
        )
        return await self._write(
            f"PUT {target}", self._client.update(obj, sub=sub, **kw), status_only=sub == "status"
        )

    async def update_status(self, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return await self.update(obj, sub="status", **kw)

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Any, **kw: Any
    ) -> dict[str, Any]:
        sub = kw.get("sub", "")
        target = _target(api_version, kind, namespace, name, sub)
        return await self._write(
            f"PATCH {target}",
            self._client.patch(api_version, kind, namespace, name, patch, **kw),
            status_only=sub == "status",
        )

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, **kw: Any
    ) -> dict[str, Any]:
        return await self._write(
            f"DELETE {_target(api_version, kind, namespace, name)}",
            self._client.delete(api_version, kind, namespace, name, **kw),
        )


class Step:
    """What a handler gets: the recording client, and a place for its Events."""

    def __init__(self, client: Client, owner: dict[str, Any] | None) -> None:
        self.calls: list[str] = []
        self.api = RecordingApi(client, self.calls)
        self.owner = owner
        self.events: list[tuple[dict[str, Any], str, str, str]] = []
        self.note = ""  # a handler may say more than its calls (e.g. "already gone")
        # A bookkeeping write Kubernetes records no Event for (a Job's tracking
        # finalizer, a GC's finalizer): the trace shows it, `kubectl get events` not.
        self.quiet = False

    def event(
        self, event_type: str, reason: str, message: str, *, on: dict[str, Any] | None = None
    ) -> None:
        target = on if on is not None else self.owner
        if target is not None:
            self.events.append((target, event_type, reason, message))

    async def delete_pod(self, name: str, uid: str | None = None) -> bool:
        """Delete one of the owner's pods (only that very pod, by `uid`), with the
        SuccessfulDelete Event Kubernetes' pod control records: whether it was there."""
        namespace = (self.owner or {})["metadata"]["namespace"]
        try:
            await self.api.delete("v1", "Pod", namespace, name, uid=uid)
        except errors.NotFound:
            self.note = "already gone"
            return False
        self.event("Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        return True


Handler = Callable[[Any, Step], Awaitable[None]]

# A trace entry keeps this many of an action's calls and Events, then says how
# many more: a CreatePods of 500 makes 500 POSTs, and the ring of 200 records is
# serialized twice a second while loops are busy (bench/controllers.py measured
# the unbounded lists as the trace's main cost).
KEPT_PER_ACTION = 20


def _bound(entry: dict[str, Any], key: str) -> None:
    items = entry.get(key)
    if items is not None and len(items) > KEPT_PER_ACTION:
        more = len(items) - KEPT_PER_ACTION
        entry[key] = [*items[:KEPT_PER_ACTION], f"... and {more} more"]


async def apply(
    actions: list[Any],
    *,
    client: Client,
    recorder: EventRecorder | None,
    handlers: Mapping[type, Handler],
    owner: dict[str, Any] | None,
    tracer: Tracer | None = None,
    loop: LoopControl | None = None,
    controller: str = "",
    decide: Any = None,
    observed: str = "",
    wanted: str = "",
    details: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
    auto_events: bool = True,
) -> None:
    """Perform `actions` in order; on an error record it and re-raise (the queue retries).

    Inside a Controller's worker the trace record is finished by the worker
    (it knows the outcome: done, requeued, error); elsewhere here.
    """
    record: Record | None = None
    if tracer is not None:
        record = tracer.begin(controller, owner, decide=decide, observed=observed, wanted=wanted)
        if details:
            record.details = details
    slot = current_reconcile.get()
    if record is not None and slot is not None:
        slot.append(record)
    if actions and loop is not None:
        delay = loop.slow_for(controller)
        if delay > 0:
            await asyncio.sleep(delay)
    try:
        for action in actions:
            text = describe(action)
            if loop is not None:
                await loop.gate(controller, text)
            handler = handlers[type(action)]
            step = Step(client, owner)
            entry: dict[str, Any] = {"action": text, "calls": step.calls}
            if record is not None:
                record.actions.append(entry)
            started = time.perf_counter()
            try:
                await handler(action, step)
            except Exception as e:
                entry["error"] = str(e) or type(e).__name__
                raise
            finally:
                entry["ms"] = round((time.perf_counter() - started) * 1000, 2)
                if step.note:
                    entry["note"] = step.note
                if recorder is not None:
                    if (
                        not step.events
                        and step.api.changed
                        and auto_events
                        and not step.quiet
                        and owner is not None
                    ):
                        step.event("Normal", type(action).__name__, text)
                    for obj, event_type, reason, message in step.events:
                        await recorder.event(obj, event_type, reason, message)
                        entry.setdefault("events", []).append(f"{reason}: {message}")
                _bound(entry, "calls")
                _bound(entry, "events")
    except Exception as e:
        if record is not None:
            record.outcome = f"error: {e}"
        raise
    finally:
        if record is not None and tracer is not None and slot is None:
            tracer.finish(record)
