"""Attach: `kubectl attach` and `kubectl run -it`, as far as the runtime is concerned.

The container's streams belong to its shim, not to the daemon: the shim copies
the output into the log and serves `attach.sock` in the container's directory
(see `shim.Attachments`). An Attach session connects there, says which streams
it wants, and relays: input and terminal resizes to the shim, output from the
shim as it comes, and last the exit code once the container has exited. Because
the socket is the shim's, a restarted daemon attaches again like the old one,
and several sessions can be attached at once, each getting all output from the
moment it attached (what came before is in the log, as with Kubernetes).

The socket is reached through the directory's `/proc/self/fd` link, since the
state directory's path may be longer than a unix socket address can hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from proto import runtime_pb2 as pb

from .shim import frame

STDIN, STDOUT, STDERR = 1, 2, 4


class ShimGone(Exception):
    """The shim's socket is not there (the container has exited, or its shim died)."""


async def connect(container_dir: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dirfd = os.open(container_dir, os.O_PATH)
    try:
        sock.connect(f"/proc/self/fd/{dirfd}/attach.sock")
    except OSError as e:
        sock.close()
        raise ShimGone(str(e)) from e
    finally:
        os.close(dirfd)
    return await asyncio.open_unix_connection(sock=sock)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readexactly(5)
        payload = await reader.readexactly(int.from_bytes(head[1:], "big"))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return head[:1], payload


def first_frames(first: Any) -> bytes:
    """What the first AttachInput asks for, as the shim's messages."""
    flags = (
        (STDIN if first.stdin else 0)
        | (STDOUT if first.stdout else 0)
        | (STDERR if first.stderr else 0)
    )
    return frame(b"A", bytes([flags])) + input_frames(first)


def input_frames(message: Any) -> bytes:
    out = b""
    if message.resize_width and message.resize_height:
        size = message.resize_width.to_bytes(2, "big") + message.resize_height.to_bytes(2, "big")
        out += frame(b"R", size)
    if message.stdin_data:
        out += frame(b"I", message.stdin_data)
    if message.stdin_close:
        out += frame(b"C")
    return out


async def _pump_input(inputs: AsyncIterator[Any], writer: asyncio.StreamWriter) -> None:
    """Client messages to the shim. The end of the client's stream is not the end of
    its stdin (only stdin_close is): it may still be reading the output."""
    with contextlib.suppress(Exception):  # the client or the shim went away: relay() ends
        async for message in inputs:
            data = input_frames(message)
            if data:
                writer.write(data)
                await writer.drain()


async def relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    first: Any,
    inputs: AsyncIterator[Any],
) -> AsyncIterator[pb.AttachOutput | None]:
    """Output as AttachOutput messages; the exit as the last one. Yields None when the
    shim went away without saying how the container ended (the caller looks it up)."""
    writer.write(first_frames(first))
    pump = asyncio.create_task(_pump_input(inputs, writer))
    try:
        with contextlib.suppress(ConnectionError):  # a closed shim reads as the end below
            await writer.drain()
        while True:
            message = await _read_frame(reader)
            if message is None:
                yield None
                return
            kind, payload = message
            if kind == b"O":
                yield pb.AttachOutput(stdout=payload)
            elif kind == b"E":
                yield pb.AttachOutput(stderr=payload)
            elif kind == b"X":
                yield pb.AttachOutput(exited=True, exit_code=int(payload))
                return
    finally:
        pump.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
