"""Events on objects, so that `kubectl describe` tells what happened and why.

Repeats of the same event (same object, type, reason and message) within ten
minutes bump `count` and `lastTimestamp` on the existing Event instead of
creating another, as client-go's EventCorrelator does. Recording never raises
into the caller: an event is a report, not part of the work.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from api.meta import now_rfc3339

from .rest import Client

log = logging.getLogger("skiff.events")
REPEAT_WINDOW = 600.0
# client-go's spam filter: per involved object, a burst of 25 events, then one
# every 5 minutes. A 1,000-pod scale-up reports its first 25 pods, not 1,000.
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
# client-go's EventCorrelator caps its caches (the aggregator's, the logger's
# and the spam filter's) at 4,096 entries each: a recorder that meets every pod
# of a big cluster must not keep ~1 KiB per pod for ever. Forgetting a key only
# means its next repeat makes a new Event instead of bumping `count`.
MAX_LRU_CACHE_ENTRIES = 4096

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict capped at `size` entries that forgets the least recently used first."""

    def __init__(self, size: int = MAX_LRU_CACHE_ENTRIES) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class EventRecorder:
    def __init__(
        self,
        client: Client,
        component: str,
        host: str = "",
        *,
        cache_size: int = MAX_LRU_CACHE_ENTRIES,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: LRU[tuple[str, ...], tuple[str, str, int, float]] = LRU(cache_size)
        # object uid -> (tokens, as of)
        self._tokens: LRU[str, tuple[float, float]] = LRU(cache_size)

    def _allowed(self, obj_key: str) -> bool:
        now = time.monotonic()
        tokens, since = self._tokens.get(obj_key) or (float(SPAM_BURST), now)
        tokens = min(SPAM_BURST, tokens + (now - since) / SPAM_REFILL_SECONDS)
        if tokens < 1:
            self._tokens[obj_key] = (tokens, now)
            return False
        self._tokens[obj_key] = (tokens - 1, now)
        return True

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
        if not self._allowed(meta.get("uid") or f"{namespace}/{meta.get('name')}"):
            return
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
