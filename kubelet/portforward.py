"""Port-forward: TCP connections into a pod, over SPDY/3.1 streams or WebSocket channels.

Each forwarded connection is one runtime `PortForward` call (contract B): the
first message names the sandbox and port, the runtime connects to
127.0.0.1:port inside the pod's network namespace and relays both ways.

kubectl (1.32 and later) opens, for every connection it accepts locally, two
SPDY streams with the same `requestID` header: an error stream
(`streamType: error`, which it half-closes at once) and a data stream
(`streamType: data`); both carry the `port`. The kubelet answers each
SYN_STREAM with a SYN_REPLY, relays the data stream to the pod, ends it with
FIN when the pod's side ends, writes why on the error stream if the
connection to the pod failed, and then ends the error stream too — kubectl
waits for that before closing its local connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc

from . import spdy, streams

log = logging.getLogger("skiff.kubelet.portforward")

CHUNK = 32 * 1024


class PodConnection:
    """One TCP connection to a port inside a sandbox, through the runtime."""

    def __init__(self, stub: pb_grpc.RuntimeServiceStub, sandbox_id: str, port: int) -> None:
        self.port = port
        self._queue: asyncio.Queue[pb.PortForwardInput | None] = asyncio.Queue()
        first = pb.PortForwardInput(pod_sandbox_id=sandbox_id, port=port)

        async def requests() -> AsyncIterator[pb.PortForwardInput]:
            yield first
            while (message := await self._queue.get()) is not None:
                yield message

        self._call = stub.PortForward(requests())

    def write(self, data: bytes) -> None:
        if data:
            self._queue.put_nowait(pb.PortForwardInput(data=data))

    def close_write(self) -> None:
        self._queue.put_nowait(pb.PortForwardInput(close=True))

    def cancel(self) -> None:
        self._queue.put_nowait(None)
        self._call.cancel()

    async def output(self) -> AsyncIterator[bytes]:
        """The pod's bytes until it closes; raises ConnectionError with the runtime's why."""
        try:
            async for out in self._call:
                if out.error:
                    raise ConnectionError(out.error)
                if out.data:
                    yield out.data
                if out.closed:
                    return
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            raise ConnectionError(e.details() or str(e.code())) from None
        finally:
            self._queue.put_nowait(None)


Connect = Callable[[int], PodConnection]
Send = Callable[[bytes], Awaitable[None]]


def _error_text(port: int, pod: str, uid: str, why: str) -> str:
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {why}"


@dataclass
class _Pair:
    request_id: str
    port: int = 0
    data_id: int = 0
    error_id: int = 0
    conn: PodConnection | None = None
    task: asyncio.Task[None] | None = None
    pending: list[bytes] = field(default_factory=list)
    client_done: bool = False


class SpdySession:
    """The kubelet's side of one SPDY/3.1 port-forward connection."""

    def __init__(self, send: Send, connect: Connect, *, pod: str, uid: str) -> None:
        self._send_raw = send
        self._connect = connect
        self._pod, self._uid = pod, uid
        self._codec = spdy.Codec()
        self._lock = asyncio.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._streams: dict[int, tuple[_Pair, str]] = {}
        self._last_stream = 0

    async def send(self, frame: spdy.Frame) -> None:
        # One lock: header compression state and byte order must follow send order.
        async with self._lock:
            await self._send_raw(self._codec.encode(frame))

    async def receive(self, data: bytes) -> bool:
        """Handle bytes from the client; False once the client has said GOAWAY."""
        for frame in self._codec.feed(data):
            if isinstance(frame, spdy.SynStream):
                await self._open(frame)
            elif isinstance(frame, spdy.Data):
                self._data(frame)
            elif isinstance(frame, spdy.Ping):
                await self.send(spdy.Ping(frame.ping_id))
            elif isinstance(frame, spdy.RstStream):
                entry = self._streams.get(frame.stream_id)
                if entry and entry[0].conn is not None:
                    entry[0].conn.cancel()
            elif isinstance(frame, spdy.GoAway):
                return False
        return True

    async def _open(self, frame: spdy.SynStream) -> None:
        self._last_stream = max(self._last_stream, frame.stream_id)
        h = frame.headers
        kind, request_id = h.get("streamtype", ""), h.get("requestid", "")
        if kind not in ("data", "error"):
            await self.send(spdy.RstStream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        await self.send(spdy.SynReply(frame.stream_id))
        pair = self._pairs.setdefault(request_id, _Pair(request_id))
        self._streams[frame.stream_id] = (pair, kind)
        if kind == "data":
            pair.data_id = frame.stream_id
        else:
            pair.error_id = frame.stream_id
        try:
            pair.port = int(h.get("port", ""))
            if not 0 < pair.port < 65536:
                raise ValueError
        except ValueError:
            if pair.error_id:
                text = f'invalid port header "{h.get("port", "")}"'
                await self.send(spdy.Data(pair.error_id, text.encode(), spdy.FLAG_FIN))
            return
        if pair.data_id and pair.error_id and pair.task is None:
            pair.task = asyncio.create_task(self._relay(pair))

    def _data(self, frame: spdy.Data) -> None:
        entry = self._streams.get(frame.stream_id)
        if entry is None or entry[1] != "data":
            return  # the error stream's FIN, or a stream we refused
        pair = entry[0]
        if pair.conn is None:
            pair.pending.append(frame.data)
            pair.client_done = pair.client_done or frame.fin
            return
        pair.conn.write(frame.data)
        if frame.fin:
            pair.conn.close_write()

    async def _relay(self, pair: _Pair) -> None:
        why = ""
        try:
            pair.conn = self._connect(pair.port)
            for chunk in pair.pending:
                pair.conn.write(chunk)
            if pair.client_done:
                pair.conn.close_write()
            async for data in pair.conn.output():
                for i in range(0, len(data), CHUNK):
                    await self.send(spdy.Data(pair.data_id, data[i : i + CHUNK]))
        except ConnectionError as e:
            why = str(e)
        except Exception as e:
            log.exception("port-forward to %s:%d failed", self._pod, pair.port)
            why = str(e)
        with contextlib.suppress(Exception):
            await self.send(spdy.Data(pair.data_id, b"", spdy.FLAG_FIN))
            if why:
                text = _error_text(pair.port, self._pod, self._uid, why)
                await self.send(spdy.Data(pair.error_id, text.encode()))
            await self.send(spdy.Data(pair.error_id, b"", spdy.FLAG_FIN))
        self._pairs.pop(pair.request_id, None)
        self._streams.pop(pair.data_id, None)
        self._streams.pop(pair.error_id, None)

    async def close(self) -> None:
        for pair in list(self._pairs.values()):
            if pair.conn is not None:
                pair.conn.cancel()
            if pair.task is not None:
                pair.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pair.task


class ChannelSession:
    """Plain-WebSocket port-forward (`v4.channel.k8s.io`, the Python client's form):
    one connection per listed port for the WebSocket's life."""

    def __init__(
        self, send: Send, connect: Connect, ports: list[int], *, pod: str, uid: str
    ) -> None:
        self._send = send
        self._ports = ports
        self._pod, self._uid = pod, uid
        self._conns = [connect(p) for p in ports]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for n, port in enumerate(self._ports):
            await self._send(streams.port_header(2 * n, port))
            await self._send(streams.port_header(2 * n + 1, port))
        self._tasks = [asyncio.create_task(self._relay(n)) for n in range(len(self._ports))]

    def receive(self, message: bytes) -> None:
        parsed = streams.parse(message)
        if parsed is None:
            return
        channel, data = parsed
        if channel % 2 == 0 and channel // 2 < len(self._conns):
            self._conns[channel // 2].write(data)

    async def _relay(self, n: int) -> None:
        try:
            async for data in self._conns[n].output():
                await self._send(streams.frame(2 * n, data))
        except ConnectionError as e:
            text = _error_text(self._ports[n], self._pod, self._uid, str(e))
            await self._send(streams.frame(2 * n + 1, text.encode()))

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for conn in self._conns:
            conn.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
