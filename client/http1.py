"""HTTP/1.1 requests on kept-alive connections, through aiohttp: every call a component makes.

Profiled in bench/scheduler.py, a binding POST through httpx cost the scheduler
about 1 ms of CPU, most of it not on the wire: httpx's request and response
models, its auth and redirect layers, httpcore's pool (which polls every idle
socket on every request), anyio's stream and TLS wrappers. aiohttp does the same
work on asyncio's own transports with its C HTTP parser, for a fraction of that.
A component sends one small JSON request at a time and reads one JSON answer;
watches are the one stream. Why aiohttp and not a parser of our own: it is well
kept, already installed (kopf uses it), and handles what a server may send
(chunked, gzip, a closed idle connection) the way a library used by thousands does.

What callers see stays httpx's: failures raise httpx's exceptions (ConnectError,
ConnectTimeout, ReadTimeout, RemoteProtocolError, ReadError), which components
already catch as `httpx.HTTPError`; the timeout is a read timeout (no byte for
that long), not a limit on the whole answer. A request is never retried on its
own (a POST may already have been carried out).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import httpx
from yarl import URL

# An idle connection older than this is closed rather than reused (the apiserver keeps
# them 60 s; client-go's transport 90 s).
IDLE_SECONDS = 30.0
# Characters left as they are in a request path (RFC 3986 pchar and "/", and "%" so
# that a path escaped by the caller is not escaped twice), as httpx leaves them.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


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


class StreamResponse:
    """An answer read as it comes (a watch)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status_code = response.status
        self.headers = _headers(response)
        self._response = response

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aread(self) -> bytes:
        with _as_httpx_errors():
            return await self._response.read()


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


def _param(value: Any) -> str:
    """A query parameter's value as httpx writes it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """aiohttp's failures as the httpx exceptions the components catch."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as e:
        raise httpx.ConnectTimeout(str(e) or "connecting timed out") from e
    except aiohttp.ServerTimeoutError as e:  # no byte read for the read timeout
        raise httpx.ReadTimeout(str(e) or "reading timed out") from e
    except aiohttp.ClientConnectorError as e:  # refused, unreachable, a TLS failure
        raise httpx.ConnectError(str(e) or type(e).__name__) from e
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as e:
        raise httpx.RemoteProtocolError(str(e) or type(e).__name__) from e
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError) as e:  # cut mid-answer
        raise httpx.ReadError(str(e) or type(e).__name__) from e
    except aiohttp.ClientError as e:
        raise httpx.TransportError(str(e) or type(e).__name__) from e


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
        self.base = URL(base_url.rstrip("/"))
        self.ssl_context = ssl_context if self.base.scheme == "https" else None
        self.headers = {"Accept": "*/*", **headers}
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy: tuple[URL | None, aiohttp.BasicAuth | None] = (None, None)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout
        )
        if content is None and method in ("POST", "PUT", "PATCH"):
            content = b""
        with _as_httpx_errors():
            session = self._session_for_this_loop()
            async with session.request(
                method,
                self._url(path, params),
                data=content,
                headers=headers,
                timeout=timeout,
                proxy=self._proxy[0],
                proxy_auth=self._proxy[1],
            ) as r:
                return Response(r.status, _headers(r), await r.read())

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
        """A request whose answer is read as it comes (a watch); its connection is
        closed afterwards rather than kept: a watch holds it for minutes, and a
        reconnect per watch is cheap next to that."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        with _as_httpx_errors():
            session = self._session_for_this_loop()
            response = await session.request(
                method,
                self._url(path, params),
                timeout=timeout,
                proxy=self._proxy[0],
                proxy_auth=self._proxy[1],
            )
        try:
            yield StreamResponse(response)
        finally:
            response.close()  # not released to the pool: the stream may be unfinished

    async def close(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        """A session and its connections belong to one event loop: a client used from
        a new loop (a test's) starts afresh."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or loop is not self._loop:
            self._loop = loop
            try:
                self._proxy = aiohttp.helpers.get_env_proxy_for_url(self.base)
            except LookupError:
                self._proxy = (None, None)
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                ssl=self.ssl_context if self.ssl_context is not None else False,
                keepalive_timeout=IDLE_SECONDS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self.headers,
                auto_decompress=True,
                # HTTPS_PROXY / NO_PROXY, as client-go's transport and httpx: looked up
                # once per session (every request goes to one server), as Go's
                # ProxyFromEnvironment reads the environment once; aiohttp's
                # trust_env looked them up, ~/.netrc included, on every request.
                trust_env=False,
                skip_auto_headers=("User-Agent",) if "User-Agent" in self.headers else (),
            )
        return self._session

    def _url(self, path: str, params: dict[str, Any] | None) -> URL:
        """The request's URL, escaped as httpx escapes it (yarl told not to again)."""
        target = self.base.path.rstrip("/") + quote(path, safe=_PATH_SAFE)
        if params:
            query = {k: [_param(x) for x in v] if isinstance(v, list | tuple) else _param(v)
                     for k, v in params.items()}  # fmt: skip
            target += "?" + urlencode(query, doseq=True)
        return URL(f"{self.base.scheme}://{self.base.raw_authority}{target}", encoded=True)
