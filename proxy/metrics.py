"""The proxy's `/healthz` and `/metrics`, under kube-proxy's own names and ports'
meaning, so a dashboard or a probe written for kube-proxy reads skiff's.

`/healthz` answers as kube-proxy's healthz server: 200 with `lastUpdated` and
`currentTime` while the rules are current, 503 when changes have waited for
a sync longer than twice the sync period (or no sync ever succeeded). One
small asyncio HTTP server serves both paths; the DNS server uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "How long one sync of the rules took (render and restore).",
            ["mode"],  # full or partial
            buckets=(
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
            ),
            registry=self.registry,
        )
        self.last_sync = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "When the rules were last synced successfully (Unix time).",
            registry=self.registry,
        )
        self.rules = Gauge(
            "kubeproxy_sync_proxy_rules_iptables_total",
            "Rules skiff has loaded, per table.",
            ["table"],
            registry=self.registry,
        )
        self.sync_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
            "Restores iptables refused (the next sync is a full one).",
            ["mode"],
            registry=self.registry,
        )
        self.last_success = 0.0  # time.time() of the last sync that succeeded
        self.queued_since: float | None = None  # first change not synced yet

    def synced(self, seconds: float, full: bool, rules: dict[str, int]) -> None:
        self.sync_duration.labels("full" if full else "partial").observe(seconds)
        self.last_success = time.time()
        self.last_sync.set(self.last_success)
        for table, n in rules.items():
            self.rules.labels(table).set(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def healthy(
    *, last_success: float, queued_since: float | None, now: float, sync_period: float
) -> bool:
    """kube-proxy's rule: unhealthy when nothing ever synced, or when a change has
    waited longer than twice the sync period for its sync."""
    if last_success == 0.0:
        return False
    return queued_since is None or now - queued_since <= 2 * sync_period


Route = Callable[[], tuple[int, str, bytes]]


class HTTPServer:
    """GET-only HTTP/1.0 answers from a table of routes, on the event loop."""

    def __init__(self, routes: dict[str, Route], host: str, port: int) -> None:
        self.routes, self.host, self.port = routes, host, port
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target = request.split(b" ", 2)[:2]
            path = target.decode().split("?", 1)[0]
            route = self.routes.get(path)
            if method != b"GET" or route is None:
                status, ctype, body = 404, "text/plain", b"404 page not found\n"
            else:
                status, ctype, body = route()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
            writer.write(
                f"HTTP/1.0 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


def healthz_route(metrics: ProxyMetrics, sync_period: float) -> Route:
    def route() -> tuple[int, str, bytes]:
        now = time.time()
        ok = healthy(
            last_success=metrics.last_success,
            queued_since=metrics.queued_since,
            now=now,
            sync_period=sync_period,
        )
        body = {
            "lastUpdated": _iso(metrics.last_success),
            "currentTime": _iso(now),
        }
        return (200 if ok else 503), "application/json", json.dumps(body).encode()

    return route


def _iso(t: float) -> str:
    if not t:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
