"""SPDY/3.1 framing, as much as kubectl port-forward needs.

kubectl 1.32 and later tunnel port-forward as SPDY/3.1 frames carried in
WebSocket binary messages (subprotocol `SPDY/3.1+portforward.k8s.io`); the
messages are a byte stream, so a frame may span messages and a message may
hold several frames. `Codec.feed` takes bytes as they come and returns the
whole frames; `Codec.encode` makes bytes of a frame.

The wire format (draft-mbelshe-httpbis-spdy-00, "SPDY Protocol - Draft 3.1"):

    control frame:  1 | version(15) = 3 | type(16) | flags(8) | length(24) | data
    data frame:     0 | stream-id(31)              | flags(8) | length(24) | data

SYN_STREAM, SYN_REPLY and HEADERS carry a header block: a 32-bit count, then
for each pair a 32-bit length and the name, a 32-bit length and the value
(several values of one name are joined by NUL). Header blocks are zlib
compressed with one stream per direction for the connection's whole life,
primed with the fixed dictionary below and flushed (Z_SYNC_FLUSH) after each
block, so both ends must keep their compressor and decompressor.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes (section 2.4.2).
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9

MAX_FRAME = 0xFFFFFF  # the 24-bit length field


def _dictionary() -> bytes:
    """SPDY/3's header-compression dictionary (section 2.6.10.1), byte for byte.

    It is the common header names and values, each behind a 32-bit length,
    followed by a run of status lines, dates and content types without lengths.
    """
    words = (
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
        "server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status"
    ).split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive"]
    words += ["origin"]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    out = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    return out + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1; the connection must end."""


@dataclass
class SynStream:
    stream_id: int
    headers: dict[str, str]
    flags: int = 0
    associated_to: int = 0
    priority: int = 0


@dataclass
class SynReply:
    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Settings:
    flags: int = 0
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (flags, id, value)


@dataclass
class Ping:
    ping_id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass
class Headers:
    stream_id: int
    headers: dict[str, str]
    flags: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass
class Data:
    stream_id: int
    data: bytes
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


Frame = SynStream | SynReply | RstStream | Settings | Ping | GoAway | Headers | WindowUpdate | Data


class Codec:
    """One end of a SPDY/3.1 connection: frames from a byte stream and back.

    Holds the connection's two zlib streams (header blocks are compressed
    against everything sent before them) and the bytes of an unfinished frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(
            zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
        )

    # -- reading ---------------------------------------------------------------

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by `data` (none while a frame is still partial)."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head = bytes(self._buffer[:8])
            body = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            frame = self._decode(head, body)
            if frame is not None:
                frames.append(frame)
        return frames

    def _decode(self, head: bytes, body: bytes) -> Frame | None:
        first, flags = struct.unpack(">IB", head[:5])
        if not first & 0x80000000:
            return Data(first & 0x7FFFFFFF, body, flags)
        version = (first >> 16) & 0x7FFF
        kind = first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported, only 3")
        if kind == SYN_STREAM:
            self._need(body, 10, "SYN_STREAM")
            sid, assoc, prio = struct.unpack(">IIB", body[:9])
            return SynStream(
                sid & 0x7FFFFFFF, self._headers(body[10:]), flags, assoc & 0x7FFFFFFF, prio >> 5
            )
        if kind == SYN_REPLY:
            self._need(body, 4, "SYN_REPLY")
            sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            return SynReply(sid, self._headers(body[4:]), flags)
        if kind == HEADERS:
            self._need(body, 4, "HEADERS")
            sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            return Headers(sid, self._headers(body[4:]), flags)
        if kind == RST_STREAM:
            self._need(body, 8, "RST_STREAM")
            sid, status = struct.unpack(">II", body[:8])
            return RstStream(sid & 0x7FFFFFFF, status)
        if kind == SETTINGS:
            self._need(body, 4, "SETTINGS")
            count = struct.unpack(">I", body[:4])[0]
            entries = []
            for i in range(count):
                chunk = body[4 + 8 * i : 12 + 8 * i]
                if len(chunk) < 8:
                    raise ProtocolError("SETTINGS frame shorter than its entry count")
                word, value = struct.unpack(">II", chunk)
                entries.append((word >> 24, word & 0xFFFFFF, value))
            return Settings(flags, entries)
        if kind == PING:
            self._need(body, 4, "PING")
            return Ping(struct.unpack(">I", body[:4])[0])
        if kind == GOAWAY:
            self._need(body, 4, "GOAWAY")
            last = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
            status = struct.unpack(">I", body[4:8])[0] if len(body) >= 8 else 0
            return GoAway(last, status)
        if kind == WINDOW_UPDATE:
            self._need(body, 8, "WINDOW_UPDATE")
            sid, delta = struct.unpack(">II", body[:8])
            return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return None  # unknown control frames are ignored (section 2.2.1)

    @staticmethod
    def _need(body: bytes, size: int, what: str) -> None:
        if len(body) < size:
            raise ProtocolError(f"{what} frame too short ({len(body)} bytes)")

    def _headers(self, block: bytes) -> dict[str, str]:
        if not block:
            return {}
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as e:
            raise ProtocolError(f"header block does not decompress: {e}") from e
        return decode_header_block(raw)

    # -- writing ---------------------------------------------------------------

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            if len(frame.data) > MAX_FRAME:
                raise ValueError("a DATA frame holds at most 16 MiB")
            return struct.pack(">IB", frame.stream_id & 0x7FFFFFFF, frame.flags) + _len24(
                frame.data
            )
        if isinstance(frame, SynStream):
            body = struct.pack(
                ">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5, 0
            ) + self._block(frame.headers)
            return _control(SYN_STREAM, frame.flags, body)
        if isinstance(frame, SynReply):
            body = struct.pack(">I", frame.stream_id) + self._block(frame.headers)
            return _control(SYN_REPLY, frame.flags, body)
        if isinstance(frame, Headers):
            body = struct.pack(">I", frame.stream_id) + self._block(frame.headers)
            return _control(HEADERS, frame.flags, body)
        if isinstance(frame, RstStream):
            return _control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (f << 24) | i, v) for f, i, v in frame.entries
            )
            return _control(SETTINGS, frame.flags, body)
        if isinstance(frame, Ping):
            return _control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return _control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
        if isinstance(frame, WindowUpdate):
            return _control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = encode_header_block(headers)
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def encode_header_block(headers: dict[str, str]) -> bytes:
    """The uncompressed block; names are lowercase on the wire, as SPDY/3 requires."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_header_block(raw: bytes) -> dict[str, str]:
    """Header names lowercased; several values of one name stay NUL-joined."""
    try:
        (count,) = struct.unpack(">I", raw[:4])
        offset = 4
        headers: dict[str, str] = {}
        for _ in range(count):
            (n,) = struct.unpack(">I", raw[offset : offset + 4])
            name = raw[offset + 4 : offset + 4 + n].decode()
            offset += 4 + n
            (v,) = struct.unpack(">I", raw[offset : offset + 4])
            value = raw[offset + 4 : offset + 4 + v].decode()
            offset += 4 + v
            headers[name.lower()] = value
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed header block: {e}") from e
    return headers


def _len24(body: bytes) -> bytes:
    return len(body).to_bytes(3, "big") + body


def _control(kind: int, flags: int, body: bytes) -> bytes:
    if len(body) > MAX_FRAME:
        raise ValueError("a control frame holds at most 16 MiB")
    return struct.pack(">HHB", 0x8000 | VERSION, kind, flags) + _len24(body)
