"""TLS for the kubelet's server: a serving certificate, and the caller's certificate in
every request's scope so the server can refuse callers that have none.

The context asks for a client certificate and verifies any that is offered
against `--client-ca-file` (a certificate from another CA fails the
handshake); a caller that offers none gets through TLS and is answered
401 Unauthorized, as a kubelet with anonymous authentication off answers.
uvicorn does not put the peer certificate in the ASGI scope, so these
protocol subclasses add it as the `tls` extension, for plain requests and for
WebSocket upgrades alike.

kubectl's port-forward subprotocol, `SPDY/3.1+portforward.k8s.io`, holds a `/`,
which RFC 6455's token grammar does not allow and the `websockets` library
refuses; the WebSocket protocol here splits the header on commas and takes the
names as they are, as Go's code does.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.typing import Subprotocol


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(client_ca))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


def _peer(transport: Any) -> bytes | None:
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object else None


class CertHttpProtocol(HttpToolsProtocol):
    peer_cert: bytes | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.peer_cert = _peer(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions["tls"] = {"client_cert_der": self.peer_cert}


class CertWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conn = self.conn

        def process_subprotocol(headers: Headers) -> Subprotocol | None:
            offered = [
                Subprotocol(name.strip())
                for value in headers.get_all("Sec-WebSocket-Protocol")
                for name in value.split(",")
                if name.strip()
            ]
            return conn.select_subprotocol(offered)

        conn.process_subprotocol = process_subprotocol  # type: ignore[method-assign]

    async def run_asgi(self) -> None:
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions["tls"] = {"client_cert_der": _peer(self.transport)}
        await super().run_asgi()
