"""PortForward: `kubectl port-forward`, as far as the runtime is concerned.

Each forwarded connection is a TCP connection to 127.0.0.1:port inside the
pod's network namespace, as containerd makes it. A socket belongs to the
network namespace it was created in, whichever thread uses it later; and the
network namespace is a property of a thread, not of the process. So a thread
of its own (not one of the pool's, which would have to be put back) enters the
pod's namespace with setns(2), creates and connects the socket, hands it to the
event loop and ends. The alternative, a short-lived helper process per
connection that passes the socket back over a unix socket, costs an
interpreter start per connection; and the daemon must not fork itself, since
grpc and pyroute2 run threads of their own.

The relay ends the way containerd's does: when the pod's side has finished
sending (`closed`), the client gets one more second to finish its side, as
socat's `-t` gives; when the client's side closes first (`close`), the
connection is half-closed towards the pod (shutdown SHUT_WR) and the pod's
answer still comes back in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

from proto import runtime_pb2 as pb
from runtime.runc import linux

CLONE_NEWNET = 0x40000000
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10.0
CLOSE_GRACE = 1.0  # seconds the other direction gets once one has ended


def _connect(netns: str, port: int) -> socket.socket:
    """In the calling thread, which is then in `netns` for good ("": stay)."""
    if netns:
        linux.setns(netns, CLONE_NEWNET)
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
    except OSError as ipv4_error:
        try:  # a server listening on ::1 only, as containerd also tries
            sock = socket.create_connection(("::1", port), timeout=CONNECT_TIMEOUT)
        except OSError:
            raise ipv4_error from None
    sock.setblocking(False)
    return sock


async def connect_in(netns: str, port: int) -> socket.socket:
    """A connected, non-blocking socket to localhost:port inside the network namespace
    at `netns`, made by a thread that ends afterwards."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(sock: socket.socket | None, error: BaseException | None) -> None:
        if done.cancelled():
            if sock is not None:
                sock.close()
        elif error is not None:
            done.set_exception(error)
        else:
            done.set_result(sock)  # type: ignore[arg-type]

    def work() -> None:
        try:
            sock = _connect(netns, port)
        except BaseException as e:  # delivered to the caller, whatever it is
            loop.call_soon_threadsafe(deliver, None, e)
        else:
            loop.call_soon_threadsafe(deliver, sock, None)

    threading.Thread(target=work, name=f"port-forward-{port}", daemon=True).start()
    return await done


def failure_message(port: int, sandbox_id: str, error: OSError) -> str:
    """As containerd words it (`failed to connect to localhost:80 inside namespace ...`)."""
    reason = error.strerror or str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        reason = "connection timed out"
    return (
        f"failed to connect to localhost:{port} inside namespace {sandbox_id!r}: "
        f"{reason[:1].lower()}{reason[1:]}"
    )


async def relay(
    sock: socket.socket, first: Any, inputs: AsyncIterator[Any]
) -> AsyncIterator[pb.PortForwardOutput]:
    loop = asyncio.get_running_loop()

    async def upstream() -> None:
        """Client to pod, then a half-close once the client says it is done."""
        message = first
        while True:
            if message.data:
                await loop.sock_sendall(sock, message.data)
            if message.close:
                break
            try:
                message = await inputs.__anext__()
            except StopAsyncIteration:  # the client closed its stream: done sending too
                break
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    up = asyncio.create_task(upstream())
    try:
        while True:
            receive = asyncio.ensure_future(loop.sock_recv(sock, CHUNK))
            await asyncio.wait({receive, up}, return_when=asyncio.FIRST_COMPLETED)
            if up.done() and up.exception() is not None:
                receive.cancel()
                error = up.exception()
                yield pb.PortForwardOutput(error=f"connection to the pod: {error}", closed=True)
                return
            try:
                data = await receive
            except OSError as e:  # reset by the pod
                yield pb.PortForwardOutput(error=f"connection to the pod: {e}", closed=True)
                return
            if not data:
                break
            yield pb.PortForwardOutput(data=data)
        yield pb.PortForwardOutput(closed=True)
        if not up.done():
            await asyncio.wait({up}, timeout=CLOSE_GRACE)
    finally:
        up.cancel()
        sock.close()
