"""HTTP/1.1 requests on kept-alive connections: the client's path for every non-streaming call.

Profiled in bench/scheduler.py, a binding POST through httpx cost the
scheduler about 1 ms of CPU, most of it not on the wire: httpx's request and
response models, its auth and redirect layers, httpcore's pool (which polls
every idle socket on every request), anyio's stream and TLS wrappers, h11
writing headers and body as separate TLS records. A component sends one small
JSON request at a time and reads one JSON answer, so this is all it does:
one write per request (head and body together, through asyncio's own TLS),
the answer parsed as it arrives (Content-Length or chunked), the connection
put back for the next request unless the server said `Connection: close`.
Watches and other streams stay on httpx (client/rest.py).

What callers see is httpx's: failures raise httpx's exceptions (ConnectError,
ConnectTimeout, ReadTimeout, RemoteProtocolError, ReadError), which components
already catch as `httpx.HTTPError`; the timeout is httpx's read timeout (no
byte for that long), not a limit on the whole answer. A request is never
retried on its own (a POST may already have been carried out).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import httpx

# An idle connection older than this is closed rather than reused (the apiserver keeps
# them 60 s; client-go's transport 90 s).
IDLE_SECONDS = 30.0
MAX_HEAD_BYTES = 64 * 1024
# Characters left as they are in a request path (RFC 3986 pchar and "/", and "%" so
# that a path escaped by the caller is not escaped twice), as httpx leaves them.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
P = TypeVar("P", bound=asyncio.Protocol)


class Response:
    """An answer read whole: status, headers (lower-case names) and body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _Connection(asyncio.Protocol):
    """One connection: a request is written whole, its answer parsed as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self._head: tuple[int, dict[str, str], int] | None = None  # status, headers, body at
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted again
            return
        self._buffer += data
        self._last_read = time.monotonic()
        try:
            response = self._parse(eof=False)
        except ValueError as e:
            self._fail(httpx.RemoteProtocolError(f"malformed answer: {e}"))
            return
        if response is not None:
            self._finish(response)

    def eof_received(self) -> bool:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            try:
                response = self._parse(eof=True)
            except ValueError as e:
                self._fail(httpx.RemoteProtocolError(f"malformed answer: {e}"))
                return False
            if response is not None:
                self._finish(response)
            else:
                self._fail(self._lost())
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._fail(self._lost(exc))

    # -- one request -----------------------------------------------------------------

    async def send(self, data: bytes, read_timeout: float | None) -> Response:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._buffer.clear()
        self._head = None
        self._last_read = time.monotonic()
        if read_timeout is not None:
            self._timer = loop.call_later(read_timeout, self._check_timeout, read_timeout)
        try:
            self.transport.write(data)
            return await self._waiter
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _check_timeout(self, timeout: float) -> None:
        """httpx's read timeout: no byte for `timeout` seconds, however long the answer."""
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return
        quiet = time.monotonic() - self._last_read
        if quiet >= timeout:
            self._fail(httpx.ReadTimeout(f"no answer for {timeout:g} s"))
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(timeout - quiet, self._check_timeout, timeout)

    def _finish(self, response: Response) -> None:
        assert self._waiter is not None
        self._waiter.set_result(response)

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()

    def _lost(self, exc: Exception | None = None) -> Exception:
        if not self._buffer:
            return httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.ReadError(f"connection lost in the middle of the answer: {exc or 'EOF'}")

    # -- parsing ---------------------------------------------------------------------

    def _parse(self, *, eof: bool) -> Response | None:
        """The whole answer once it is here, else None (more bytes to come)."""
        buf = self._buffer
        if self._head is None:
            self._head = _parse_head(buf)
            if self._head is None:
                return None
        status, headers, start = self._head
        if status in (204, 304):
            body: bytes | None = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(buf, start)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = bytes(buf[start : start + length]) if len(buf) - start >= length else None
        else:  # neither: the body runs until the server closes the connection
            body = bytes(buf[start:]) if eof else None
            headers["connection"] = "close"
        if body is None:
            return None
        encoding = headers.get("content-encoding", "").lower()
        if encoding == "gzip":
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        return Response(status, headers, body)


def _parse_head(buf: bytearray) -> tuple[int, dict[str, str], int] | None:
    """(status, headers with lower-case names, where the body starts) once the header
    section is all here, else None. Interim answers (100 Continue) are dropped."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise ValueError("header section too long")
            return None
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not HTTP/1.x: {lines[0][:40]!r}")
        status = int(rest[:3])
        if 100 <= status < 200:  # an interim answer: the real one follows
            del buf[: end + 4]
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return status, headers, end + 4


class _Stream(asyncio.Protocol):
    """One streamed answer (a watch) on a connection of its own: the head, then the
    body's bytes as they arrive, de-chunked. Closed when the stream ends."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[tuple[int, dict[str, str]]] = loop.create_future()
        self._buffer = bytearray()  # bytes as received, not yet decoded
        self._body = bytearray()  # decoded body bytes not yet taken
        self._chunked = False
        self._remaining: int | None = None  # Content-Length left to read
        # Bytes of the current chunk still to come; 0: its CRLF; -1: a size line next.
        self._chunk_left = -1
        self._done = False
        self._error: Exception | None = None
        self._wake: asyncio.Future[None] | None = None
        self.last_read = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        self._buffer += data
        try:
            if not self.head.done():
                parsed = _parse_head(self._buffer)
                if parsed is None:
                    return
                status, headers, start = parsed
                del self._buffer[:start]
                self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
                if not self._chunked and "content-length" in headers:
                    self._remaining = int(headers["content-length"])
                self.head.set_result((status, headers))
            self._decode()
        except ValueError as e:
            self.fail(httpx.RemoteProtocolError(f"malformed answer: {e}"))
            return
        self._wakeup()

    def eof_received(self) -> bool:
        if not self._done and not self._chunked and self._remaining is None:
            self._done = True  # a body without length ends with the connection
        self.connection_lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done and self._error is None:
            if not self.head.done():
                self.fail(httpx.RemoteProtocolError("Server disconnected without an answer."))
            else:
                self.fail(httpx.RemoteProtocolError(f"the stream was cut: {exc or 'EOF'}"))
        self._wakeup()

    def fail(self, error: Exception) -> None:
        if self._error is None and not self._done:
            self._error = error
        if not self.head.done():
            self.head.set_exception(error)
        self._wakeup()
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _decode(self) -> None:
        """Move what has arrived of the body from the buffer to `_body`."""
        buf = self._buffer
        if not self._chunked:
            if self._remaining is not None:
                take = buf[: self._remaining]
                self._remaining -= len(take)
                self._done = self._remaining == 0
            else:
                take = buf[:]
            self._body += take
            buf.clear()
            return
        pos = 0
        while not self._done:
            if self._chunk_left == -1:  # a size line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
                pos = eol + 2
                if size == 0:
                    self._done = True  # trailers, if any, are not read
                    break
                self._chunk_left = size
            elif self._chunk_left == 0:  # the CRLF that ends a chunk
                if len(buf) < pos + 2:
                    break
                pos += 2
                self._chunk_left = -1
            else:
                data = buf[pos : pos + self._chunk_left]
                if not data:
                    break
                self._body += data
                pos += len(data)
                self._chunk_left -= len(data)
        del buf[:pos]

    async def next_bytes(self) -> bytes:
        """The body's bytes that came since the last call; b"" at its end."""
        while True:
            if self._body:
                out = bytes(self._body)
                self._body.clear()
                return out
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None


class StreamResponse:
    """A streamed answer: status and headers first, then the body as it comes."""

    def __init__(self, conn: _Stream, status_code: int, headers: dict[str, str]) -> None:
        self._conn = conn
        self.status_code = status_code
        self.headers = headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while data := await self._conn.next_bytes():
            yield data

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])


def _dechunk(buf: bytearray, pos: int) -> bytes | None:
    """A chunked body from `pos`, or None when its last chunk has not arrived yet."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:  # the last chunk; then trailers (ignored) and an empty line
            if buf[pos : pos + 2] == b"\r\n":
                return b"".join(parts)
            return b"".join(parts) if buf.find(b"\r\n\r\n", pos) >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


def _param(value: Any) -> str:
    """A query parameter's value as httpx writes it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


class Pool:
    """Kept-alive connections to one server, at most `max_connections` requests at once."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        headers: dict[str, str],
        timeout: float | None,
        max_connections: int = 32,
    ) -> None:
        url = urlsplit(base_url)
        self.https = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path.rstrip("/")
        self.ssl_context = ssl_context if self.https else None
        self.timeout = timeout
        self.max_connections = max_connections
        host = f"[{self.host}]" if ":" in self.host else self.host
        if url.port is not None and url.port != (443 if self.https else 80):
            host += f":{url.port}"
        fixed = {"Host": host, "Accept": "*/*", **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        data = self._request_bytes(method, path, params, content, headers)
        slots = self._slots_for_this_loop()
        async with slots:
            conn = self._checkout() or await self._open(_Connection, self.timeout)
            try:
                response = await conn.send(data, self.timeout)
            except BaseException:
                conn.close()  # cancelled or failed in the middle: not reusable
                raise
            if (
                conn.closed
                or self._closed
                or response.headers.get("connection", "").lower() == "close"
            ):
                conn.close()
            else:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            return response

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[StreamResponse]:
        """A request whose answer is read as it comes (a watch), on a connection of its
        own that is closed afterwards: a watch holds it for minutes, and a reconnect
        per watch is cheap next to that."""
        data = self._request_bytes(method, path, params, None, None)
        loop = asyncio.get_running_loop()
        conn: _Stream = await self._open(_Stream, connect_timeout)
        timer: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal timer
            assert read_timeout is not None
            quiet = time.monotonic() - conn.last_read
            if quiet >= read_timeout:
                conn.fail(httpx.ReadTimeout(f"nothing read for {read_timeout:g} s"))
            else:
                timer = loop.call_later(read_timeout - quiet, check)

        try:
            if read_timeout is not None:
                conn.last_read = time.monotonic()
                timer = loop.call_later(read_timeout, check)
            assert conn.transport is not None
            conn.transport.write(data)
            status, headers = await conn.head
            yield StreamResponse(conn, status, headers)
        finally:
            if timer is not None:
                timer.cancel()
            conn.close()

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    def _slots_for_this_loop(self) -> asyncio.Semaphore:
        """The semaphore and the idle connections belong to one event loop: a client
        used from a new loop (a test's) starts afresh."""
        loop = asyncio.get_running_loop()
        if self._slots is None or loop is not self._loop:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.max_connections)
            self._idle = []
        return self._slots

    def _checkout(self) -> _Connection | None:
        """The most recently used idle connection that the server has not closed."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    def _request_bytes(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
    ) -> bytes:
        """The whole request, head and body, for one write."""
        target = self.prefix + quote(path, safe=_PATH_SAFE)
        if params:
            query = {k: [_param(x) for x in v] if isinstance(v, list | tuple) else _param(v)
                     for k, v in params.items()}  # fmt: skip
            target += "?" + urlencode(query, doseq=True)
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed}"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if content is not None or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(content or b'')}\r\n"
        data = (head + "\r\n").encode()
        return data + content if content else data

    async def _open(self, protocol: Callable[[], P], connect_timeout: float | None) -> P:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    protocol,
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as e:  # refused, unreachable, a TLS failure (ssl.SSLError)
            raise httpx.ConnectError(str(e) or type(e).__name__) from e
        return conn
