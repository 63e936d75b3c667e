"""WebSocket upgrades with the caller's TLS client certificate in the scope.

uvicorn hands a WebSocket upgrade to a separate protocol object that builds its
own scope; like `tls.ClientCertProtocol` for plain requests, this subclass adds
the verified peer certificate as the `tls` extension, so authentication sees a
client certificate on `kubectl exec`/`attach`/`port-forward` too.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class ClientCertWebSocketProtocol(WebSocketsSansIOProtocol):
    async def run_asgi(self) -> None:
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions["tls"] = {"client_cert_der": peer}
        await super().run_asgi()
