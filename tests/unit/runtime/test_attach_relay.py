"""The daemon's side of Attach (attach.relay) over a real unix socket, with the test
as the shim: everything the shim sent before it closed reaches the client, however
the close went (input of the session still on its way, or unread by the shim)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

from proto import runtime_pb2 as pb
from runtime.daemon.attach import relay
from runtime.daemon.shim import frame

FIRST = pb.AttachInput(container_id="c", stdin=True, stdout=True, stderr=True)
LAST_WORDS = frame(b"O", b"got hi\n") + frame(b"E", b"bye\n") + frame(b"X", b"4")
EXPECTED = [
    pb.AttachOutput(stdout=b"got hi\n"),
    pb.AttachOutput(stderr=b"bye\n"),
    pb.AttachOutput(exited=True, exit_code=4),
]


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """(the daemon's end, non-blocking as relay wants it; the shim's end)"""
    daemon, shim = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    daemon.setblocking(False)
    return daemon, shim


async def stdin_then_close() -> AsyncIterator[pb.AttachInput]:
    """kubectl's piped stdin: a line, then stdin_close."""
    yield pb.AttachInput(stdin_data=b"hi\n")
    yield pb.AttachInput(stdin_close=True)


async def test_output_of_a_shim_that_closed_before_our_input_arrived() -> None:
    """The container read its line and exited, and the shim closed, before the
    session's stdin_close was written: the write fails, the output still comes."""
    daemon, shim = socket_pair()
    shim.sendall(LAST_WORDS)
    shim.close()
    outputs = [out async for out in relay(daemon, FIRST, stdin_then_close())]
    assert outputs == EXPECTED


async def test_output_before_a_reset_connection() -> None:
    """The shim closed with our input unread (the connection is reset) while the
    client was still taking the first output: what came before the reset comes."""
    daemon, shim = socket_pair()
    shim.sendall(frame(b"O", b"got hi\n"))
    outputs = []
    async for out in relay(daemon, FIRST, stdin_then_close()):
        outputs.append(out)
        if len(outputs) == 1:
            shim.setblocking(True)
            shim.recv(5)  # the A message has come: our input is in the shim's socket
            shim.sendall(LAST_WORDS[len(frame(b"O", b"got hi\n")) :])
            shim.close()  # unread input: a reset
            for _ in range(20):  # a gRPC client takes a few turns of the loop
                await asyncio.sleep(0)
    assert outputs == EXPECTED


async def test_a_shim_that_died_without_the_exit_message() -> None:
    """Its output, then None: the caller looks the exit up in the container's record."""
    daemon, shim = socket_pair()
    shim.sendall(frame(b"O", b"partial"))
    shim.close()
    outputs = [out async for out in relay(daemon, FIRST, stdin_then_close())]
    assert outputs == [pb.AttachOutput(stdout=b"partial"), None]
