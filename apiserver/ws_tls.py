"""WebSockets as Kubernetes uses them: client certificates, and its subprotocol names.

uvicorn hands a WebSocket upgrade to a separate protocol object that builds its
own scope; like `tls.ClientCertProtocol` for plain requests, this subclass adds
the verified peer certificate as the `tls` extension, so authentication sees a
client certificate on `kubectl exec`/`attach`/`port-forward` too.

kubectl's port-forward subprotocol, `SPDY/3.1+portforward.k8s.io`, holds a `/`,
which RFC 6455's token grammar does not allow and the `websockets` library
therefore refuses ("invalid Sec-WebSocket-Protocol header"); Go's WebSocket code
splits the header on commas and takes the names as they are. Both ends here
(this server, and `kubelet_connection` towards the kubelet) do the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import NegotiationError
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol


def offered_subprotocols(headers: Headers) -> list[Subprotocol]:
    """Every name in every Sec-WebSocket-Protocol header, split on commas as Go does."""
    return [
        Subprotocol(name.strip())
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for name in value.split(",")
        if name.strip()
    ]


def lenient_server(conn: ServerProtocol) -> None:
    def process_subprotocol(headers: Headers) -> Subprotocol | None:
        return conn.select_subprotocol(offered_subprotocols(headers))

    conn.process_subprotocol = process_subprotocol  # type: ignore[method-assign]


def kubelet_connection(offered: list[str]) -> Callable[..., ClientConnection]:
    """A `websockets` client connection factory for `connect(create_connection=...)`
    that offers `offered` (sent as a header, since `websockets` would refuse the names)
    and accepts the one the server picks among them."""

    def make(protocol: ClientProtocol, *args: Any, **kwargs: Any) -> ClientConnection:
        def process_subprotocol(headers: Headers) -> Subprotocol | None:
            chosen = offered_subprotocols(headers)
            if not chosen:
                return None
            if len(chosen) > 1 or chosen[0] not in offered:
                raise NegotiationError(f"unsupported subprotocol: {', '.join(chosen)}")
            return chosen[0]

        protocol.process_subprotocol = process_subprotocol  # type: ignore[method-assign]
        return ClientConnection(protocol, *args, **kwargs)

    return make


class ClientCertWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lenient_server(self.conn)

    async def run_asgi(self) -> None:
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions["tls"] = {"client_cert_der": peer}
        await super().run_asgi()
