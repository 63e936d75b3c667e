"""Events on objects, so that `kubectl describe` tells what happened and why.

Repeats of the same event (same object, type, reason and message) within ten
minutes bump `count` and `lastTimestamp` on the existing Event instead of
creating another, as client-go's EventCorrelator does. Recording never raises
into the caller: an event is a report, not part of the work.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from api.meta import now_rfc3339

from .rest import Client

log = logging.getLogger("skiff.events")
REPEAT_WINDOW = 600.0


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: dict[tuple[str, ...], tuple[str, str, int, float]] = {}

    async def event(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        key = (
            namespace,
            obj.get("kind", ""),
            meta.get("name", ""),
            meta.get("uid", ""),
            event_type,
            reason,
            message,
        )
        now = now_rfc3339()
        try:
            seen = self._seen.get(key)
            if seen and time.monotonic() - seen[3] < REPEAT_WINDOW:
                name, ns, count, _ = seen
                await self.client.patch(
                    "v1", "Event", ns, name, {"count": count + 1, "lastTimestamp": now}
                )
                self._seen[key] = (name, ns, count + 1, time.monotonic())
                return
            name = f"{meta.get('name', 'unknown')}.{time.time_ns():x}"
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion", ""),
                    "kind": obj.get("kind", ""),
                    "name": meta.get("name", ""),
                    "namespace": meta.get("namespace", ""),
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "type": event_type,
                "source": {
                    "component": self.component,
                    **({"host": self.host} if self.host else {}),
                },
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "reportingComponent": self.component,
                "reportingInstance": self.host,
            }
            await self.client.create(body)
            self._seen[key] = (name, namespace, 1, time.monotonic())
        except Exception as e:
            log.warning("could not record event %s on %s: %s", reason, meta.get("name"), e)
