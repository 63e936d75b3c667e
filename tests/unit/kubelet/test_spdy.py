"""SPDY/3.1 framing and the kubelet's side of a port-forward connection, byte for byte."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator

import pytest

from kubelet import spdy
from kubelet.portforward import SpdySession


def test_dictionary_is_spdy3s():
    # The size and Adler-32 (the DICTID a peer's zlib stream names) of SPDY/3's dictionary.
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


@pytest.mark.parametrize(
    "frame",
    [
        spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
        spdy.SynStream(3, {"streamtype": "data"}, flags=spdy.FLAG_FIN, priority=2),
        spdy.SynReply(5, {}),
        spdy.SynReply(7, {"status": "200"}, flags=spdy.FLAG_FIN),
        spdy.Headers(9, {"a": "b"}),
        spdy.RstStream(11, spdy.CANCEL),
        spdy.Settings(0, [(0, 7, 65536)]),
        spdy.Ping(42),
        spdy.GoAway(13, 0),
        spdy.WindowUpdate(1, 1024),
        spdy.Data(1, b"hello"),
        spdy.Data(3, b"", spdy.FLAG_FIN),
    ],
)
def test_frames_round_trip(frame: spdy.Frame):
    writer, reader = spdy.Codec(), spdy.Codec()
    assert reader.feed(writer.encode(frame)) == [frame]


def test_frames_split_and_joined_anyhow_arrive_whole():
    writer, reader = spdy.Codec(), spdy.Codec()
    frames = [
        spdy.SynStream(1, {"port": "8080"}),
        spdy.Data(1, b"x" * 5000),
        spdy.Ping(1),
        spdy.SynStream(3, {"port": "8080", "streamtype": "data"}),
    ]
    wire = b"".join(writer.encode(f) for f in frames)
    got = []
    for i in range(0, len(wire), 7):  # WebSocket messages need not follow frame edges
        got += reader.feed(wire[i : i + 7])
    assert got == frames


def test_header_blocks_share_one_zlib_stream_per_direction():
    writer, reader = spdy.Codec(), spdy.Codec()
    first = writer.encode(spdy.SynStream(1, {"requestid": "0"}))
    second = writer.encode(spdy.SynStream(3, {"requestid": "0"}))
    # The second block refers back to the first: alone, a fresh reader cannot inflate it.
    with pytest.raises(spdy.ProtocolError):
        spdy.Codec().feed(second)
    assert [f.stream_id for f in reader.feed(first + second)] == [1, 3]


def test_wire_layout_of_a_control_and_a_data_frame():
    codec = spdy.Codec()
    ping = codec.encode(spdy.Ping(7))
    assert ping == bytes([0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7])
    data = codec.encode(spdy.Data(5, b"ab", spdy.FLAG_FIN))
    assert data == struct.pack(">IB", 5, 1) + b"\x00\x00\x02ab"


def test_other_versions_are_refused():
    frame = struct.pack(">HHB", 0x8000 | 2, spdy.PING, 0) + b"\x00\x00\x04" + b"\x00" * 4
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        spdy.Codec().feed(frame)


class FakeConnection:
    """Stands in for the runtime's PortForward: echoes upper-cased, or fails."""

    def __init__(self, port: int, fail: str = "") -> None:
        self.port, self.fail = port, fail
        self.received = b""
        self.closed = asyncio.Event()
        self.cancelled = False

    def write(self, data: bytes) -> None:
        self.received += data

    def close_write(self) -> None:
        self.closed.set()

    def cancel(self) -> None:
        self.cancelled = True
        self.closed.set()

    async def output(self) -> AsyncIterator[bytes]:
        if self.fail:
            raise ConnectionError(self.fail)
        await self.closed.wait()
        yield self.received.upper()


class Kubectl:
    """The client's side: kubectl's frames in, the server's frames out."""

    def __init__(self, fail: str = "") -> None:
        self.codec, self.reader = spdy.Codec(), spdy.Codec()
        self.frames: list[spdy.Frame] = []
        self.connections: list[FakeConnection] = []

        async def send(data: bytes) -> None:
            self.frames += self.reader.feed(data)

        def connect(port: int) -> FakeConnection:
            self.connections.append(FakeConnection(port, fail))
            return self.connections[-1]

        self.session = SpdySession(send, connect, pod="default/web", uid="u1")  # type: ignore[arg-type]

    async def send(self, *frames: spdy.Frame) -> None:
        await self.session.receive(b"".join(self.codec.encode(f) for f in frames))

    async def until(self, done) -> None:
        for _ in range(200):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"server frames: {self.frames}")


def _stream(sid: int, kind: str, request: str = "0") -> spdy.SynStream:
    return spdy.SynStream(sid, {"streamtype": kind, "port": "8080", "requestid": request})


async def test_a_forwarded_connection_as_kubectl_makes_it():
    k = Kubectl()
    await k.send(_stream(1, "error"), spdy.Data(1, b"", spdy.FLAG_FIN), _stream(3, "data"))
    await k.send(spdy.Data(3, b"ping"), spdy.Data(3, b"", spdy.FLAG_FIN))
    await k.until(lambda: spdy.Data(1, b"", spdy.FLAG_FIN) in k.frames)
    assert k.frames[:2] == [spdy.SynReply(1), spdy.SynReply(3)]
    assert spdy.Data(3, b"PING") in k.frames
    # The data stream ends before the error stream, and the error stream stays empty.
    assert k.frames.index(spdy.Data(3, b"", spdy.FLAG_FIN)) < k.frames.index(
        spdy.Data(1, b"", spdy.FLAG_FIN)
    )
    assert not [f for f in k.frames if isinstance(f, spdy.Data) and f.stream_id == 1 and f.data]
    assert k.connections[0].port == 8080


async def test_a_failed_connection_is_explained_on_the_error_stream():
    k = Kubectl(fail="failed to connect to localhost:8080: connection refused")
    await k.send(_stream(1, "error"), _stream(3, "data"))
    await k.until(lambda: spdy.Data(1, b"", spdy.FLAG_FIN) in k.frames)
    text = b"".join(f.data for f in k.frames if isinstance(f, spdy.Data) and f.stream_id == 1)
    assert text == (
        b"error forwarding port 8080 to pod default/web, uid u1: "
        b"failed to connect to localhost:8080: connection refused"
    )


async def test_pings_are_answered_and_goaway_ends_the_session():
    k = Kubectl()
    await k.send(spdy.Ping(5))
    assert k.frames == [spdy.Ping(5)]
    assert await k.session.receive(k.codec.encode(spdy.GoAway(0))) is False


async def test_streams_of_unknown_type_are_reset():
    k = Kubectl()
    await k.send(spdy.SynStream(1, {"streamtype": "bogus", "port": "80"}))
    assert k.frames == [spdy.RstStream(1, spdy.PROTOCOL_ERROR)]
