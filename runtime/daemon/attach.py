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


def connect(container_dir: Path) -> socket.socket:
    """The shim's attach socket, connected and non-blocking (for the loop's sock_* calls)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dirfd = os.open(container_dir, os.O_PATH)
    try:
        sock.connect(f"/proc/self/fd/{dirfd}/attach.sock")
    except OSError as e:
        sock.close()
        raise ShimGone(str(e)) from e
    finally:
        os.close(dirfd)
    sock.setblocking(False)
    return sock


async def _frames(sock: socket.socket) -> AsyncIterator[tuple[bytes, bytes]]:
    """The shim's messages until its side is closed.

    Read from the socket itself, not through an asyncio stream: a stream whose
    transport fails (the shim closed while our input was still on its way, so a
    write gets EPIPE, or the shim's close reset the connection) raises at the next
    read even though the shim's last output and exit message are in its buffer.
    The kernel hands over everything the shim sent before it reports a reset.
    """
    loop = asyncio.get_running_loop()
    buffer = b""
    while True:
        try:
            data = await loop.sock_recv(sock, 65536)
        except ConnectionError:
            return
        if not data:
            return
        buffer += data
        while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[1:5], "big"):
            size = int.from_bytes(buffer[1:5], "big")
            yield buffer[:1], buffer[5 : 5 + size]
            buffer = buffer[5 + size :]


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


async def _pump_input(inputs: AsyncIterator[Any], sock: socket.socket) -> None:
    """Client messages to the shim. The end of the client's stream is not the end of
    its stdin (only stdin_close is): it may still be reading the output. A failed
    write ends the input only: the output is read on regardless (see `_frames`)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(Exception):  # the client or the shim went away
        async for message in inputs:
            data = input_frames(message)
            if data:
                await loop.sock_sendall(sock, data)


async def relay(
    sock: socket.socket, first: Any, inputs: AsyncIterator[Any]
) -> AsyncIterator[pb.AttachOutput | None]:
    """Output as AttachOutput messages; the exit as the last one. Yields None when the
    shim went away without saying how the container ended (the caller looks it up)."""
    loop = asyncio.get_running_loop()
    pump: asyncio.Task[None] | None = None
    try:
        with contextlib.suppress(OSError):  # a shim that closed already: its output is read
            await loop.sock_sendall(sock, first_frames(first))
        pump = asyncio.create_task(_pump_input(inputs, sock))
        async for kind, payload in _frames(sock):
            if kind == b"O":
                yield pb.AttachOutput(stdout=payload)
            elif kind == b"E":
                yield pb.AttachOutput(stderr=payload)
            elif kind == b"X":
                yield pb.AttachOutput(exited=True, exit_code=int(payload))
                return
        yield None
    finally:
        try:
            if pump is not None:
                pump.cancel()
                await asyncio.wait([pump])  # its pending write is withdrawn before the close
        finally:
            sock.close()
