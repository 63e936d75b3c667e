"""Waiting for child processes without a thread each.

A shim lives as long as its container and an exec session as long as its
user; a worker thread blocked in `wait()` for each of them would soon take
every thread of asyncio's default executor (6 on a 2-core node) and leave
none for the calls that need one: the daemon would hang with a handful of
containers. A pidfd (Linux 5.3+) becomes readable when its process exits, so
the event loop itself can tell when to reap.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

_reaping: set[asyncio.Task[int]] = set()


async def wait(proc: subprocess.Popen[bytes]) -> int:
    """The child's exit status, once it has exited, with no thread blocked meanwhile."""
    if proc.poll() is not None:
        return int(proc.returncode)
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:  # reaped meanwhile
        return proc.wait()
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return proc.wait()  # it has exited: this only collects the status


def reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Collect the child's status whenever it exits, so that it leaves no zombie."""
    task = asyncio.ensure_future(wait(proc))
    _reaping.add(task)
    task.add_done_callback(_reaping.discard)
