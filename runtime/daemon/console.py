"""Receiving a terminal over a console socket, in runc's protocol: the OCI runtime
connects and sends one message carrying the terminal's master side (SCM_RIGHTS).

Used by the shim (a container with a terminal) and by exec sessions on runc and
crun. The shim imports it, so it imports only `os`, `socket` and `time`.
"""

from __future__ import annotations

import os
import socket
import time

TYPE_CHECKING = False  # not `from typing import ...`: the shim pays for every import
if TYPE_CHECKING:
    from collections.abc import Callable


def listen(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    return server


def receive_terminal(
    server: socket.socket, sender_gone: Callable[[], bool], timeout: float = 30.0
) -> int | None:
    """The master fd; None when `sender_gone()` says the runtime ended without sending
    one (it failed first), or after `timeout` seconds."""
    server.settimeout(0.1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn, _ = server.accept()
            break
        except TimeoutError:
            if sender_gone() or time.monotonic() > deadline:
                return None
    with conn:
        conn.settimeout(timeout)
        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    return fds[0] if fds else None
