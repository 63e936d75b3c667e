"""The kubelet's exec/attach session: what kubectl receives when the command ends.

The runtime's call is played by a fake that hands over its messages and then ends the
way a real gRPC call does in each case. The case this guards: kubectl's stdin still
flowing as the command exits (`yes | kubectl exec -i pod -- head -n1`), so the
kubelet's write of more input loses the race with the runtime's end of the call and
grpc.aio fails the call with INTERNAL "Internal error from Core" after every output
message, the exit message included, has arrived. kubectl must still see the output,
then the command's exit code on the error channel, then the close.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from kubelet import streams
from kubelet.server import (
    CONTAINER_NAME,
    INPUT_BACKLOG,
    POD_NAME,
    POD_NAMESPACE,
    KubeletServer,
    WebSocket,
)
from proto import runtime_pb2 as pb


class FakeCall:
    """A streaming call: its messages in order, then its end (an error, or None for OK)."""

    def __init__(self, requests: AsyncIterator[Any], outputs: list[Any], end: Exception | None):
        self.requests, self.outputs, self.end = requests, outputs, end
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Any]:
        for out in self.outputs:
            await asyncio.sleep(0)
            yield out
        if self.end is not None:
            raise self.end

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeRuntime:
    """One running container; Exec and Attach answer with the call the test set."""

    def __init__(self, outputs: list[Any], end: Exception | None) -> None:
        self.outputs, self.end = outputs, end
        self.calls: list[FakeCall] = []

    async def ListContainers(self, request: Any) -> pb.ListContainersResponse:
        labels = {POD_NAMESPACE: "default", POD_NAME: "web", CONTAINER_NAME: "main"}
        return pb.ListContainersResponse(containers=[pb.ContainerStatus(id="c1", labels=labels)])

    async def ContainerStatus(self, request: Any) -> pb.ContainerStatusResponse:
        return pb.ContainerStatusResponse(
            status=pb.ContainerStatus(id=request.container_id, state=pb.CONTAINER_RUNNING)
        )

    def _call(self, requests: AsyncIterator[Any]) -> FakeCall:
        self.calls.append(FakeCall(requests, self.outputs, self.end))
        return self.calls[-1]

    Exec = Attach = _call


def internal_after_a_late_write() -> grpc.aio.AioRpcError:
    """What grpc.aio raises at the end of a call whose request write failed because the
    server had finished (the status it sets in place of the server's OK)."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="Internal error from Core",
        debug_error_string='Failed "execute_batch": (SendMessageOperation,)',
    )


def unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="the shim of container c1 went away",
    )


OUTPUT = [pb.ExecOutput(stdout=b"got hi\n"), pb.ExecOutput(stderr=b"bye\n")]
EXITED_4 = pb.ExecOutput(exited=True, exit_code=4)


async def session(kind: str, outputs: list[Any], end: Exception | None) -> list[Any]:
    """kubectl's view: the messages the kubelet sent, in order, ending in 'close'."""
    runtime = FakeRuntime(outputs, end)
    channel = grpc.aio.insecure_channel("unix:///nonexistent-skiff-test.sock")
    server = KubeletServer(
        node_name="node-1",
        channel=channel,
        pods=lambda ns, name: None,
        bind_address="127.0.0.1",
        port=0,
        cert_file="c",  # type: ignore[arg-type]
        key_file="k",  # type: ignore[arg-type]
        client_ca_file="ca",  # type: ignore[arg-type]
    )
    server._stub = runtime  # type: ignore[assignment]
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    incoming.put_nowait({"type": "websocket.receive", "bytes": b"\x00hi\n"})
    incoming.put_nowait({"type": "websocket.receive", "bytes": b"\x00hi\n"})
    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            sent.append(message["bytes"])
        elif message["type"] == "websocket.close":
            sent.append("close")
            incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    query = b"command=sh&command=-c&command=read+x&stdin=true&stdout=true&stderr=true"
    scope = {"type": "websocket", "query_string": query, "subprotocols": [streams.V5]}
    ws = WebSocket(scope, incoming.get, send)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(
            server._stream_session(ws, streams.V5, kind == "attach", "default", "web", "main"),
            timeout=10,
        )
    finally:
        await channel.close()
    return sent


def status(message: Any) -> dict[str, Any]:
    assert isinstance(message, bytes) and message[0] == streams.ERROR, message
    return json.loads(message[1:])


@pytest.mark.parametrize(
    ("kind", "end"),
    [
        ("exec", None),
        ("exec", internal_after_a_late_write()),
        ("attach", None),
        ("attach", internal_after_a_late_write()),
    ],
    ids=["exec-ok", "exec-late-write-failed", "attach-ok", "attach-late-write-failed"],
)
async def test_the_exit_message_decides_however_the_call_ends(
    kind: str, end: Exception | None
) -> None:
    sent = await session(kind, [*OUTPUT, EXITED_4], end)
    assert sent[:2] == [b"\x01got hi\n", b"\x02bye\n"]
    assert sent[3:] == ["close"]
    if kind == "exec":
        assert status(sent[2]) == streams.exit_status(4, ["sh", "-c", "read x"])
    else:  # attach reports no exit code, as the kubelet's does not
        assert status(sent[2]) == streams.success()


async def test_a_call_that_fails_before_the_exit_is_reported_as_a_failure() -> None:
    sent = await session("exec", [OUTPUT[0]], unavailable())
    assert sent[0] == b"\x01got hi\n" and sent[2:] == ["close"]
    assert status(sent[1])["message"] == "error in exec: the shim of container c1 went away"
    assert status(sent[1])["status"] == "Failure"


async def test_input_the_command_does_not_take_holds_the_client_back() -> None:
    """`yes | kubectl exec -i pod -- sleep 60`: the kubelet stops reading the client once
    INPUT_BACKLOG messages wait for the runtime (TCP then holds kubectl back), reads on
    when the runtime takes some, and still ends with the command's output and exit."""
    release = asyncio.Event()

    class SlowRuntime(FakeRuntime):
        def _call(self, requests: AsyncIterator[Any]) -> FakeCall:
            call = HeldCall(requests, self.outputs, self.end)
            self.calls.append(call)
            return call

        Exec = _call

    class HeldCall(FakeCall):
        async def _messages(self) -> AsyncIterator[Any]:
            await release.wait()
            async for out in super()._messages():
                yield out

    runtime = SlowRuntime([pb.ExecOutput(stdout=b"done\n"), EXITED_4], None)
    channel = grpc.aio.insecure_channel("unix:///nonexistent-skiff-test.sock")
    server = KubeletServer(
        node_name="node-1",
        channel=channel,
        pods=lambda ns, name: None,
        bind_address="127.0.0.1",
        port=0,
        cert_file="c",  # type: ignore[arg-type]
        key_file="k",  # type: ignore[arg-type]
        client_ca_file="ca",  # type: ignore[arg-type]
    )
    server._stub = runtime  # type: ignore[assignment]
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    for _ in range(100):
        incoming.put_nowait({"type": "websocket.receive", "bytes": b"\x00y\n"})
    taken = 0
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        taken += 1
        return await incoming.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            sent.append(message["bytes"])
        elif message["type"] == "websocket.close":
            sent.append("close")
            incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    query = b"command=sleep&command=60&stdin=true&stdout=true"
    scope = {"type": "websocket", "query_string": query, "subprotocols": [streams.V5]}
    ws = WebSocket(scope, receive, send)  # type: ignore[arg-type]
    held = INPUT_BACKLOG + 2  # the connect, the backlog, and one waiting for room
    try:
        running = asyncio.create_task(
            server._stream_session(ws, streams.V5, False, "default", "web", "main")
        )
        for _ in range(1000):  # the loop's turns, not time: the reader runs until it waits
            await asyncio.sleep(0)
        assert taken == held
        call = runtime.calls[0]
        for _ in range(1 + 10):  # the runtime takes the first message and ten of input
            await anext(call.requests)
        for _ in range(1000):
            await asyncio.sleep(0)
        assert taken == held + 10
        release.set()  # the command writes and exits
        await asyncio.wait_for(running, timeout=10)
    finally:
        await channel.close()
    assert sent[0] == b"\x01done\n" and sent[2:] == ["close"]
    assert status(sent[1]) == streams.exit_status(4, ["sleep", "60"])
