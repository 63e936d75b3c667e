"""Container probes: running one (`run_probe`) and deciding what the results mean (`ProbeTracker`).

`run_probe` performs one exec, httpGet, tcpSocket or grpc check the way the
kubelet's prober does and returns (ok, message). The message is the prober's
output, the part after "Liveness probe failed: " in an `Unhealthy` event
(`unhealthy_message` adds that part). A success with a message is Kubernetes'
probe *warning* (an HTTP redirect to another host, which is not followed):
the kubelet counts it as success and records a `ProbeWarning` event.

`ProbeTracker` is the kubelet's probe worker without its goroutine: it says
when the next probe is due and turns a run of results into a state change
only once `successThreshold` / `failureThreshold` consecutive results agree.
It starts where Kubernetes starts: liveness healthy, readiness not ready,
startup unknown. After a liveness or startup failure it stops probing (the
container is about to be restarted; a new container gets a new tracker),
and a startup probe stops once it has succeeded.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx

ExecSync = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]

KUBE_PROBE_USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024  # the prober reads at most 10 KiB of output or body
MAX_REDIRECTS = 10
KINDS = {"liveness": "Liveness", "readiness": "Readiness", "startup": "Startup"}


def _unverified_tls() -> ssl.SSLContext:
    """HTTPS probes do not verify the certificate (InsecureSkipVerify), as the kubelet's.

    Made once: building a context for every probe is most of a probe's cost.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS = _unverified_tls()


def unhealthy_message(kind: str, output: str) -> str:
    """The `Unhealthy` event's message: `Liveness probe failed: <output>`."""
    return f"{KINDS.get(kind.lower(), kind)} probe failed: {output}"


class _ProbeError(Exception):
    """The probe could not even be attempted (a named port that does not exist, ...)."""


def _resolve_port(port: Any, container: dict[str, Any]) -> int:
    """An int, a numeric string, or the name of one of the container's ports."""
    if isinstance(port, str) and not port.isdigit():
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise _ProbeError(f"port {port} not found")
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise _ProbeError(f"invalid port number: {port}") from None
    if not 0 < number < 65536:
        raise _ProbeError(f"invalid port number: {number}")
    return number


def _pod_ip(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    return status.get("podIP") or next(
        (p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")), ""
    )


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(exc: BaseException) -> str | None:
    """Go's words for a failed connect ('connection refused'), found in an exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return {
                errno.ECONNREFUSED: "connection refused",
                errno.EHOSTUNREACH: "no route to host",
                errno.ENETUNREACH: "network is unreachable",
                errno.ECONNRESET: "connection reset by peer",
            }.get(seen.errno, (seen.strerror or str(seen)).lower())
        seen = seen.__cause__ or seen.__context__
    return None


async def run_probe(
    probe: dict[str, Any],
    *,
    pod: dict[str, Any],
    container: dict[str, Any],
    exec_sync: ExecSync,
) -> tuple[bool, str]:
    """Run the probe once; (ok, output). Never raises for a failing target."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if probe.get("exec") is not None:
            return await _exec(probe["exec"].get("command") or [], timeout, exec_sync)
        if probe.get("httpGet") is not None:
            return await _http_get(probe["httpGet"], timeout, pod, container)
        if probe.get("tcpSocket") is not None:
            return await _tcp_socket(probe["tcpSocket"], timeout, pod, container)
        if probe.get("grpc") is not None:
            return await _grpc(probe["grpc"], timeout, pod)
    except _ProbeError as e:
        return False, str(e)
    except OSError as e:  # e.g. a host name that does not resolve
        return False, str(e)
    return False, "missing probe handler"


# ---------------------------------------------------------------- exec


async def _exec(command: list[str], seconds: float, exec_sync: ExecSync) -> tuple[bool, str]:
    """Exit 0 is success; the output (stdout and stderr) is the message either way."""
    timed_out = f'command "{" ".join(command)}" timed out'
    try:
        # The runtime enforces the timeout; the margin only guards against a runtime
        # that does not answer at all.
        code, output = await asyncio.wait_for(exec_sync(command, seconds), seconds + 5)
    except TimeoutError:
        return False, timed_out
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return False, timed_out
        return False, f"rpc error: code = {e.code().name} desc = {e.details()}"
    text = output[:MAX_OUTPUT].decode("utf-8", errors="replace")
    return code == 0, text


# ---------------------------------------------------------------- httpGet


def probe_url(http_get: dict[str, Any], pod: dict[str, Any], container: dict[str, Any]) -> str:
    """scheme://host:port/path, host defaulting to the pod IP (NewRequestForHTTPGet)."""
    scheme = (http_get.get("scheme") or "HTTP").lower()
    host = http_get.get("host") or _pod_ip(pod)
    port = _resolve_port(http_get.get("port"), container)
    path = http_get.get("path") or ""
    parsed = urllib.parse.urlsplit(path)
    return urllib.parse.urlunsplit(
        (scheme, _host_port(host, port), parsed.path, parsed.query, parsed.fragment)
    )


async def _http_get(
    http_get: dict[str, Any], seconds: float, pod: dict[str, Any], container: dict[str, Any]
) -> tuple[bool, str]:
    """200-399 succeed; redirects are followed on the same host only, as the kubelet does."""
    url = probe_url(http_get, pod, container)
    headers = {"User-Agent": KUBE_PROBE_USER_AGENT, "Accept": "*/*", "Connection": "close"}
    for header in http_get.get("httpHeaders") or []:
        headers[header.get("name", "")] = header.get("value", "")
    first_host = httpx.URL(url).host
    current = url
    try:
        async with (
            asyncio.timeout(seconds),
            httpx.AsyncClient(verify=_TLS, follow_redirects=False, trust_env=False) as client,
        ):
            for _ in range(MAX_REDIRECTS + 1):
                response = await client.get(current, headers=headers)
                body = (await response.aread())[:MAX_OUTPUT].decode("utf-8", errors="replace")
                location = response.headers.get("location")
                if response.is_redirect and location:
                    target = response.url.join(location)
                    if target.host != first_host:
                        # Not followed: the 3xx itself is the answer, a warning.
                        return True, f"Probe terminated redirects, Response body: {body}"
                    current = str(target)
                    continue
                if 200 <= response.status_code < 400:
                    return True, ""
                return False, f"HTTP probe failed with statuscode: {response.status_code}"
            return False, f'Get "{current}": stopped after {MAX_REDIRECTS} redirects'
    except TimeoutError:
        return False, (
            f'Get "{current}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)"
        )
    except httpx.HTTPError as e:
        target = httpx.URL(current)
        reason = _dial_error(e)
        if isinstance(e, httpx.ConnectError) and reason:
            address = _host_port(target.host, target.port or 80)
            return False, f'Get "{current}": dial tcp {address}: connect: {reason}'
        return False, f'Get "{current}": {reason or e or type(e).__name__}'


# ---------------------------------------------------------------- tcpSocket


async def _tcp_socket(
    tcp: dict[str, Any], seconds: float, pod: dict[str, Any], container: dict[str, Any]
) -> tuple[bool, str]:
    """A connection that opens is success; it is closed at once."""
    host = tcp.get("host") or _pod_ip(pod)
    port = _resolve_port(tcp.get("port"), container)
    address = _host_port(host, port)
    try:
        async with asyncio.timeout(seconds):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, f"dial tcp {address}: i/o timeout"
    except OSError as e:
        return False, f"dial tcp {address}: connect: {_dial_error(e)}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True, ""


# ---------------------------------------------------------------- grpc


_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _health_request(service: str) -> bytes:
    """grpc.health.v1.HealthCheckRequest{service} in protobuf wire format (field 1, string)."""
    data = service.encode()
    if not data:
        return b""
    length, out = len(data), bytearray([0x0A])
    while length >= 0x80:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out) + data


def _health_status(message: bytes) -> int:
    """HealthCheckResponse.status (field 1, varint); 0 when absent."""
    if len(message) >= 2 and message[0] == 0x08:
        return message[1]
    return 0


async def _grpc(spec: dict[str, Any], seconds: float, pod: dict[str, Any]) -> tuple[bool, str]:
    """The standard gRPC health check against the pod IP, as the kubelet's grpc probe does."""
    address = _host_port(_pod_ip(pod), int(spec.get("port") or 0))
    service = spec.get("service") or ""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), seconds)
        except TimeoutError:
            return False, (
                f'timeout: failed to connect service "{address}" within {_go_duration(seconds)}: '
                "context deadline exceeded"
            )
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            reply = await check(_health_request(service), timeout=seconds)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return False, (
                    "this server does not implement the grpc health protocol "
                    f"(grpc.health.v1.Health): {e.details()}"
                )
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"timeout: health rpc did not complete within {_go_duration(seconds)}"
            return False, (
                "error: health rpc probe failed: "
                f"rpc error: code = {e.code().name.title().replace('_', '')} desc = {e.details()}"
            )
    status = _health_status(reply)
    if status != 1:
        return False, f'service unhealthy (responded with "{_SERVING_STATUS.get(status, status)}")'
    return True, ""


def _go_duration(seconds: float) -> str:
    return f"{seconds:g}s"


# ---------------------------------------------------------------- the tracker (pure)


class ProbeTracker:
    """When to probe one container with one probe, and when results change its state.

    `due(now)` and `record(ok, now)` take seconds on one clock (monotonic is best);
    pass to `record` the time the probe started. `started_at` is when the container
    started (initialDelaySeconds counts from it); by default, the first `due` call.
    """

    def __init__(
        self, probe: dict[str, Any], kind: str, *, started_at: float | None = None
    ) -> None:
        self.kind = kind.lower()
        if self.kind not in KINDS:
            raise ValueError(f"probe kind must be one of {sorted(KINDS)}, not {kind!r}")
        self.initial_delay = float(probe.get("initialDelaySeconds") or 0)
        self.period = float(probe.get("periodSeconds") or 10)
        self.timeout = float(probe.get("timeoutSeconds") or 1)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        self.started_at = started_at
        # Kubernetes' initial values: alive until proven dead, not ready until proven
        # ready, not started (unknown) until the startup probe succeeds.
        self.result: bool | None = {"liveness": True, "readiness": False, "startup": None}[
            self.kind
        ]
        self.last_probe: float | None = None
        self.last_ok: bool | None = None
        self.run = 0
        self.on_hold = False

    def due(self, now: float) -> bool:
        """True when a probe should run now."""
        if self.started_at is None:
            self.started_at = now
        if self.on_hold or (self.kind == "startup" and self.result is True):
            return False
        if now < self.started_at + self.initial_delay:
            return False
        return self.last_probe is None or now >= self.last_probe + self.period

    def next_due(self) -> float | None:
        """When the next probe is due (for a timer), or None when none will be."""
        if self.on_hold or (self.kind == "startup" and self.result is True):
            return None
        start = (self.started_at or 0.0) + self.initial_delay
        if self.last_probe is None:
            return start
        return max(start, self.last_probe + self.period)

    def record(self, ok: bool, now: float) -> bool | None:
        """Count one result; the new state when this result flips it, else None."""
        self.last_probe = now
        if ok == self.last_ok:
            self.run += 1
        else:
            self.last_ok, self.run = ok, 1
        threshold = self.success_threshold if ok else self.failure_threshold
        if self.run < threshold:
            return None
        changed = self.result != ok
        self.result = ok
        if not ok and self.kind in ("liveness", "startup"):
            # The container will be restarted: no more probes until a new one exists.
            self.on_hold = True
            self.run = 0
        return ok if changed else None
