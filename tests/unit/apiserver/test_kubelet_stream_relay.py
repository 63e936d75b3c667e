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

import pytest
from websockets.asyncio.server import ServerConnection, serve

from apiserver.kubelet_proxy import KubeletProxy, client_close

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


async def _relay_to(kubelet: Any, relayed: asyncio.Event | None = None) -> list[dict[str, Any]]:
    """Everything the relay sent kubectl while relaying to `kubelet` (a websockets
    handler); kubectl connects, sends nothing and stays until the relay closes.
    `relayed` is set when the relay has handed kubectl a message."""
    never = asyncio.Event()
    connected = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await never.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if relayed is not None and message["type"] == "websocket.send":
            relayed.set()

    async with serve(kubelet, "127.0.0.1", 0, subprotocols=["v5.channel.k8s.io"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        proxy = KubeletProxy.__new__(KubeletProxy)
        proxy.connector = SimpleNamespace(ssl=None)  # type: ignore[assignment]
        scope = {"type": "websocket", "subprotocols": ["v5.channel.k8s.io"]}
        url = f"ws://127.0.0.1:{port}/exec/default/web/main?command=sleep&command=3600"
        await asyncio.wait_for(proxy._relay_websocket(scope, receive, send, url), timeout=10)
    return sent


async def test_a_kubelet_that_drops_the_connection_is_not_a_clean_end() -> None:
    """The kubelet dies (no close frame): kubectl must not get the normal close that
    reads as exit 0, but a close client-go reports as an error, after the output."""

    relayed = asyncio.Event()

    async def kubelet(ws: ServerConnection) -> None:
        await ws.send(b"\x01partial\n")
        await relayed.wait()  # the output has reached kubectl: now die
        ws.transport.abort()  # as a killed kubelet: TCP reset, no close frame

    sent = await _relay_to(kubelet, relayed)

    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["bytes"] == b"\x01partial\n"
    close = sent[-1]
    assert close["code"] == 1011
    assert "kubelet" in close["reason"] and "lost" in close["reason"]


async def test_a_kubelet_error_close_reaches_kubectl_as_it_was_sent() -> None:
    async def kubelet(ws: ServerConnection) -> None:
        await ws.close(1011, "runtime went away")

    sent = await _relay_to(kubelet)

    assert sent[-1] == {"type": "websocket.close", "code": 1011, "reason": "runtime went away"}


async def test_a_normal_end_stays_a_normal_close() -> None:
    status = b'\x03{"metadata":{},"status":"Success"}'

    async def kubelet(ws: ServerConnection) -> None:
        await ws.send(status)
        await ws.close()

    sent = await _relay_to(kubelet)

    assert sent[-2] == {"type": "websocket.send", "bytes": status}
    assert sent[-1] == {"type": "websocket.close", "code": 1000, "reason": ""}


@pytest.mark.parametrize(
    ("code", "reason", "expected_code", "reason_has"),
    [
        (1000, "", 1000, ""),
        (1001, "going away", 1001, "going away"),
        (1011, "boom", 1011, "boom"),
        (4000, "app", 4000, "app"),
        (1005, "", 1011, "without a status code"),
        (1006, "", 1011, "lost"),
        (1015, "", 1011, "TLS"),
    ],
)
def test_client_close(code: int, reason: str, expected_code: int, reason_has: str) -> None:
    got_code, got_reason = client_close(code, reason)
    assert got_code == expected_code
    assert reason_has in got_reason
    assert len(got_reason.encode()) <= 123


def test_a_long_reason_is_cut_to_fit_a_close_frame() -> None:
    _, reason = client_close(1011, "é" * 100)
    assert 0 < len(reason.encode()) <= 123
