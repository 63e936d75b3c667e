"""Probes: ProbeTracker's thresholds and timing by tables; run_probe against real servers.

The servers listen on 127.0.0.1, which plays the pod IP here.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelet.probes import ProbeTracker, run_probe, unhealthy_message

POD = {"metadata": {"name": "web", "namespace": "ns"}, "status": {"podIP": "127.0.0.1"}}


# ---------------------------------------------------------------- ProbeTracker


def probe(**fields: Any) -> dict[str, Any]:
    return {"periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3, **fields}


@pytest.mark.parametrize(
    ("kind", "spec", "results", "expected"),
    [
        # liveness starts healthy: only failureThreshold failures in a row flip it
        ("liveness", probe(), [False, False, True, False, False], [None] * 5),
        ("liveness", probe(), [False, False, False], [None, None, False]),
        ("liveness", probe(failureThreshold=1), [False], [False]),
        # readiness starts not ready: the first success flips it, failures then need a run
        ("readiness", probe(), [True, True, False, False, False], [True, None, None, None, False]),
        ("readiness", probe(successThreshold=3), [True, True, True], [None, None, True]),
        (
            "readiness",
            probe(successThreshold=2),
            [True, False, True, True],
            [None, None, None, True],
        ),
        ("readiness", probe(), [False, False, False, False], [None] * 4),
        ("readiness", probe(failureThreshold=1), [True, False, True], [True, False, True]),
        # startup starts unknown: success and failure both decide
        ("startup", probe(), [False, True], [None, True]),
        ("startup", probe(failureThreshold=2), [False, False], [None, False]),
    ],
)
def test_thresholds(
    kind: str, spec: dict[str, Any], results: list[bool], expected: list[bool | None]
) -> None:
    tracker = ProbeTracker(spec, kind, started_at=0.0)
    assert [tracker.record(ok, 10.0 * i) for i, ok in enumerate(results)] == expected


def test_timing_initial_delay_and_period() -> None:
    tracker = ProbeTracker(probe(initialDelaySeconds=5, periodSeconds=3), "readiness")
    assert tracker.due(100.0) is False  # the first call is the container's start
    assert tracker.due(104.9) is False
    assert tracker.next_due() == 105.0
    assert tracker.due(105.0) is True
    tracker.record(False, 105.0)
    assert tracker.due(107.0) is False
    assert tracker.next_due() == 108.0
    assert tracker.due(108.0) is True


def test_liveness_failure_holds_probing_until_a_new_container() -> None:
    tracker = ProbeTracker(probe(failureThreshold=2, periodSeconds=1), "liveness", started_at=0)
    assert tracker.record(False, 1) is None
    assert tracker.record(False, 2) is False
    assert tracker.due(100) is False and tracker.next_due() is None


def test_startup_stops_probing_once_started() -> None:
    tracker = ProbeTracker(probe(periodSeconds=1), "startup", started_at=0)
    assert tracker.due(0) is True
    assert tracker.record(True, 0) is True
    assert tracker.due(50) is False


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="probe kind"):
        ProbeTracker(probe(), "aliveness")


def test_unhealthy_message() -> None:
    assert unhealthy_message("liveness", "x") == "Liveness probe failed: x"
    assert unhealthy_message("Readiness", "x") == "Readiness probe failed: x"


# ---------------------------------------------------------------- servers


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A tiny HTTP/1.1 server: the path says what to answer."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        return
    request_line, *header_lines = head.split("\r\n")
    path = request_line.split()[1]
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
    status, extra = 200, ""
    if path == "/fail":
        status = 500
    elif path == "/redirect-same":
        status, extra = 302, "Location: /ok\r\n"
    elif path == "/redirect-loop":
        status, extra = 302, "Location: /redirect-loop\r\n"
    elif path == "/redirect-other":
        port = writer.get_extra_info("sockname")[1]
        status, extra = 302, f"Location: http://localhost:{port}/ok\r\n"
    elif path == "/needs-header":
        status = 200 if headers.get("x-probe") == "yes" else 401
    elif path == "/agent":
        status = 200 if headers.get("user-agent", "").startswith("kube-probe/") else 403
    elif path == "/slow":
        await asyncio.sleep(5)
    writer.write(
        f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n{extra}Connection: close\r\n\r\nhi".encode()
    )
    try:
        await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=probe-test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def https_port(tls_files: tuple[Path, Path]) -> AsyncIterator[int]:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(_handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def no_exec(command: list[str], seconds: float) -> tuple[int, bytes]:
    raise AssertionError("exec_sync must not be called")


async def check(spec: dict[str, Any], container: dict[str, Any] | None = None) -> tuple[bool, str]:
    return await run_probe(
        {"timeoutSeconds": 1, **spec},
        pod=POD,
        container=container or {"name": "app"},
        exec_sync=no_exec,
    )


# ---------------------------------------------------------------- httpGet


async def test_http_status_codes_and_redirects(http_port: int) -> None:
    async def get(path: str, **more: Any) -> tuple[bool, str]:
        return await check({"httpGet": {"path": path, "port": http_port, **more}})

    assert await get("/ok") == (True, "")
    assert await get("/fail") == (False, "HTTP probe failed with statuscode: 500")
    assert await get("/redirect-same") == (True, "")
    # another host: not followed, the 3xx counts as success with a warning
    assert await get("/redirect-other") == (True, "Probe terminated redirects, Response body: hi")
    ok, message = await get("/redirect-loop")
    assert not ok and message.endswith("stopped after 10 redirects")
    assert await get("/agent") == (True, "")
    assert await get("/needs-header") == (False, "HTTP probe failed with statuscode: 401")
    headers = [{"name": "X-Probe", "value": "yes"}]
    assert await get("/needs-header", httpHeaders=headers) == (True, "")


async def test_http_named_port_and_refused_and_timeout(http_port: int) -> None:
    container = {"name": "app", "ports": [{"name": "web", "containerPort": http_port}]}
    assert await check({"httpGet": {"path": "/ok", "port": "web"}}, container) == (True, "")
    assert await check({"httpGet": {"path": "/ok", "port": "nope"}}, container) == (
        False,
        "port nope not found",
    )
    assert await check({"tcpSocket": {"port": 70000}}) == (False, "invalid port number: 70000")
    assert await check({"tcpSocket": {}}) == (False, "invalid port number: None")
    port = closed_port()
    assert await check({"httpGet": {"path": "/healthz", "port": port}}) == (
        False,
        f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: '
        "connect: connection refused",
    )
    assert await check({"httpGet": {"path": "/slow", "port": http_port}}) == (
        False,
        f'Get "http://127.0.0.1:{http_port}/slow": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    )


async def test_https_is_not_verified(https_port: int) -> None:
    spec = {"httpGet": {"path": "/ok", "port": https_port, "scheme": "HTTPS"}}
    assert await check(spec) == (True, "")
    spec = {"httpGet": {"path": "/fail", "port": https_port, "scheme": "HTTPS"}}
    assert await check(spec) == (False, "HTTP probe failed with statuscode: 500")


# ---------------------------------------------------------------- tcpSocket


async def test_tcp_socket(http_port: int) -> None:
    assert await check({"tcpSocket": {"port": http_port}}) == (True, "")
    container = {"name": "app", "ports": [{"name": "web", "containerPort": http_port}]}
    assert await check({"tcpSocket": {"port": "web"}}, container) == (True, "")
    port = closed_port()
    assert await check({"tcpSocket": {"port": port}}) == (
        False,
        f"dial tcp 127.0.0.1:{port}: connect: connection refused",
    )


# ---------------------------------------------------------------- exec


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ((0, b"fine\n"), (True, "fine\n")),
        ((1, b"cat: /tmp/healthy: No such file or directory\n"),
         (False, "cat: /tmp/healthy: No such file or directory\n")),
        (TimeoutError(), (False, 'command "cat /tmp/healthy" timed out')),
    ],
)  # fmt: skip
async def test_exec(reply: Any, expected: tuple[bool, str]) -> None:
    calls: list[tuple[list[str], float]] = []

    async def exec_sync(command: list[str], seconds: float) -> tuple[int, bytes]:
        calls.append((command, seconds))
        if isinstance(reply, Exception):
            raise reply
        return reply

    spec = {"exec": {"command": ["cat", "/tmp/healthy"]}, "timeoutSeconds": 2}
    assert (
        await run_probe(spec, pod=POD, container={"name": "app"}, exec_sync=exec_sync) == expected
    )
    assert calls == [(["cat", "/tmp/healthy"], 2.0)]


# ---------------------------------------------------------------- grpc


@pytest.fixture
async def grpc_port() -> AsyncIterator[tuple[int, dict[str, bytes]]]:
    answers = {"": b"\x08\x01", "sick": b"\x08\x02"}

    def health(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        service = request[2:].decode()
        return answers[service]

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(health, lambda b: b, lambda b: b)},
    )
    server = grpc.aio.server(handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, answers
    finally:
        await server.stop(None)


async def test_grpc_health(grpc_port: tuple[int, dict[str, bytes]]) -> None:
    port, _ = grpc_port
    assert await check({"grpc": {"port": port}}) == (True, "")
    assert await check({"grpc": {"port": port, "service": "sick"}}) == (
        False,
        'service unhealthy (responded with "NOT_SERVING")',
    )
    closed = closed_port()
    assert await check({"grpc": {"port": closed}}) == (
        False,
        f'timeout: failed to connect service "127.0.0.1:{closed}" within 1s: '
        "context deadline exceeded",
    )


async def test_tcp_socket_timeout() -> None:
    """A listener whose accept queue is full drops new SYNs: the connect times out."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):  # fill the accept queue; never accepted
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        assert await check({"tcpSocket": {"port": port}}) == (
            False,
            f"dial tcp 127.0.0.1:{port}: i/o timeout",
        )
    finally:
        for s in fillers:
            s.close()
        listener.close()
