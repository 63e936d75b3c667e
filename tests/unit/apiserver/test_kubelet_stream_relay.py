"""The apiserver's relay of exec/attach WebSockets to the kubelet: nothing the kubelet
sent before it closed is lost because kubectl's input could no longer be delivered.

The ordering forced here is the one a race produces: the command has exited, the
kubelet has sent its last output and the exit status and closed its WebSocket, while
kubectl is slow to take the output (the relay is still waiting to hand over the first
message) and still sending stdin (`yes | kubectl exec -i ...`). The relay's write of
that stdin to the kubelet fails; that must end the input only.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from apiserver.kubelet_proxy import KubeletProxy

FROM_KUBELET = [
    b"\x01got hi\n",
    b"\x02bye\n",
    b'\x03{"metadata":{},"status":"Failure","reason":"NonZeroExitCode"}',
]


async def test_output_sent_before_the_kubelet_closed_reaches_a_slow_client() -> None:
    kubelet_closed = asyncio.Event()
    client_may_read = asyncio.Event()
    never = asyncio.Event()

    async def kubelet(ws: ServerConnection) -> None:
        for message in FROM_KUBELET:
            await ws.send(message)
        await ws.close()  # the closing handshake is complete when this returns
        kubelet_closed.set()

    received: list[Any] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        """kubectl: connects, sends stdin once the kubelet has closed, then reads."""
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "websocket.connect"}
        if calls == 2:
            await kubelet_closed.wait()
            return {"type": "websocket.receive", "bytes": b"\x00hi\n"}
        client_may_read.set()  # the relay took that input (or dropped it): read on
        await never.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await client_may_read.wait()  # kubectl has not read yet: the relay waits
            received.append(message["bytes"])
        else:
            received.append(message["type"])

    async with serve(kubelet, "127.0.0.1", 0, subprotocols=["v5.channel.k8s.io"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        proxy = KubeletProxy.__new__(KubeletProxy)
        proxy.connector = SimpleNamespace(ssl=None)  # type: ignore[assignment]
        scope = {"type": "websocket", "subprotocols": ["v5.channel.k8s.io"]}
        url = f"ws://127.0.0.1:{port}/exec/default/web/main?command=sh&stdin=true"
        await asyncio.wait_for(proxy._relay_websocket(scope, receive, send, url), timeout=10)

    assert received == ["websocket.accept", *FROM_KUBELET, "websocket.close"]
