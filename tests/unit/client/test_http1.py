"""The client's HTTP/1.1 path (client/http1.py, on aiohttp) against a small local server:
what a caller sees must be what httpx gave it (answers, query strings, its exceptions),
and connections must be kept alive, or dropped when the server says so."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from client import http1

Answer = Callable[[bytes], bytes]


def reply(status: int, body: bytes = b"", *, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


class Server:
    """Answers each request with `answer(request bytes)`; counts connections; keeps
    the requests it saw."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                out = self.answer(request)
                if out:
                    writer.write(out)
                    await writer.drain()
                if b"Connection: close" in out:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Server]]:
    servers: list[Server] = []

    def start(answer: Answer) -> Server:
        s = Server(answer)
        servers.append(s)
        return s

    yield start
    for s in servers:
        if s.server is not None:
            s.server.close()
        for w in s.writers:
            w.close()


def idle_connected(pool: http1.Pool) -> int:
    """The pool's idle connections still open (aiohttp's connector keeps them)."""
    connector = pool._session.connector if pool._session is not None else None
    idle = getattr(connector, "_conns", {})
    return sum(1 for conns in idle.values() for proto, _ in conns if proto.is_connected())


async def started(server: Server) -> http1.Pool:
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    return http1.Pool(
        server.url, ssl_context=None, headers={"Authorization": "Bearer t"}, timeout=2.0
    )


async def test_connections_are_kept_alive_and_answers_read_whole(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda req: reply(200, b'{"kind":"Pod"}'))
    pool = await started(server)
    for _ in range(5):
        r = await pool.request("GET", "/api/v1/pods")
        assert (r.status_code, r.content) == (200, b'{"kind":"Pod"}')
    assert server.connections == 1
    # Requests at once each get a connection, then those are reused.
    await asyncio.gather(*(pool.request("GET", "/x") for _ in range(4)))
    await asyncio.gather(*(pool.request("GET", "/x") for _ in range(4)))
    assert server.connections == 4
    await pool.close()


async def test_request_line_headers_query_and_body(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda req: reply(201, b"{}"))
    pool = await started(server)
    r = await pool.request(
        "POST",
        "/api/v1/namespaces/ns/pods/a b/binding",
        params={"fieldManager": "m", "dryRun": True, "labelSelector": "app in (a,b)"},
        content=b'{"x":1}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 201
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == (
        "POST /api/v1/namespaces/ns/pods/a%20b/binding"
        "?fieldManager=m&dryRun=true&labelSelector=app+in+%28a%2Cb%29 HTTP/1.1"
    )
    assert "Authorization: Bearer t" in lines and "Content-Type: application/json" in lines
    assert "Content-Length: 7" in lines and body == b'{"x":1}'
    assert any(line.startswith("Host: 127.0.0.1:") for line in lines)
    await pool.close()


async def test_chunked_gzip_and_connection_close(serve) -> None:  # type: ignore[no-untyped-def]
    answers = iter(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'4\r\n{"a"\r\n4;ext=1\r\n:12}\r\n0\r\n\r\n',
            reply(200, gzip.compress(b'{"z":1}'), extra="Content-Encoding: gzip\r\n"),
            reply(404, b'{"code":404}', extra="Connection: close\r\n"),
            reply(204),
        ]
    )
    server = serve(lambda req: next(answers))
    pool = await started(server)
    assert (await pool.request("GET", "/a")).content == b'{"a":12}'
    assert (await pool.request("GET", "/b")).content == b'{"z":1}'
    r = await pool.request("GET", "/c")
    assert (r.status_code, r.content) == (404, b'{"code":404}')
    assert (await pool.request("DELETE", "/d")).status_code == 204
    assert server.connections == 2  # the server closed the first after /c
    await pool.close()


async def test_a_connection_the_server_closed_is_not_reused(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda req: reply(200, b"{}"))
    pool = await started(server)
    await pool.request("GET", "/a")
    for w in server.writers:  # the server's keep-alive timeout
        w.close()
    for _ in range(100):  # until the client has seen the close
        if not idle_connected(pool):
            break
        await asyncio.sleep(0.01)
    assert (await pool.request("GET", "/b")).status_code == 200
    assert server.connections == 2
    await pool.close()


async def test_failures_are_httpx_errors(serve) -> None:  # type: ignore[no-untyped-def]
    silent = serve(lambda req: b"")  # reads the request, never answers
    pool = await started(silent)
    pool.timeout = 0.2
    with pytest.raises(httpx.ReadTimeout):
        await pool.request("GET", "/slow")
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{"
    hangup = serve(lambda req: cut)
    pool = await started(hangup)
    with pytest.raises(httpx.ReadError):
        await pool.request("GET", "/cut")
    assert hangup.server is not None
    port = hangup.server.sockets[0].getsockname()[1]
    hangup.server.close()
    await hangup.server.wait_closed()
    refused = http1.Pool(f"http://127.0.0.1:{port}", ssl_context=None, headers={}, timeout=1.0)
    with pytest.raises(httpx.ConnectError):
        await refused.request("GET", "/")
    garbage = serve(lambda req: b"SSH-2.0-OpenSSH\r\n\r\n")
    pool = await started(garbage)
    with pytest.raises(httpx.RemoteProtocolError):
        await pool.request("GET", "/")


async def test_a_stream_is_read_as_it_comes_whatever_the_packet_boundaries() -> None:
    events = [b'{"type":"ADDED"}\n', b'{"type":"MODIFIED","object":{"a":"' + b"x" * 3000 + b'"}}\n']
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    for step in (1, 7, 100, len(wire)):  # the same bytes, cut in packets of `step`

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            for i in range(0, len(wire), step):  # noqa: B023
                writer.write(wire[i : i + step])  # noqa: B023
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = http1.Pool(f"http://127.0.0.1:{port}", ssl_context=None, headers={}, timeout=2)
        async with pool.stream("GET", "/w", params={"watch": "1"}, read_timeout=5) as r:
            assert r.status_code == 200
            assert await r.aread() == b"".join(events)
        server.close()


async def test_a_silent_stream_times_out_and_an_error_answer_is_read_whole() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if b"/gone" in request:
            writer.write(reply(410, b'{"code":410}'))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await reader.read()  # holds the connection open until the client leaves
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = http1.Pool(f"http://127.0.0.1:{port}", ssl_context=None, headers={}, timeout=2)
    async with pool.stream("GET", "/gone") as r:
        assert (r.status_code, await r.aread()) == (410, b'{"code":410}')
    with pytest.raises(httpx.ReadTimeout):
        async with pool.stream("GET", "/w", read_timeout=0.2) as r:
            await r.aread()
    server.close()
