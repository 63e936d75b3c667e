"""TLS with optional client certificates, and the peer certificate in each request.

uvicorn terminates TLS but does not put the client's certificate in the ASGI
scope. This protocol subclass reads it once per connection from the SSL
object and adds it as the `tls` extension, where authentication finds it.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+, serving `cert`, asking for (not requiring) a client cert from `client_ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(client_ca))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


class ClientCertProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that exposes the verified client certificate to the app."""

    peer_cert: bytes | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        self.peer_cert = ssl_object.getpeercert(binary_form=True) if ssl_object else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions["tls"] = {"client_cert_der": self.peer_cert}
