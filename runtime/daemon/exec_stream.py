"""A streaming exec session: `kubectl exec -it` as far as the runtime is concerned.

The command runs through the OCI runtime's `exec`, as ExecSync does, but its
standard streams stay connected to the gRPC stream while it runs: input
messages are written to its stdin, its output is sent as it comes, and the
last message carries the exit code. With a terminal, the process gets the
slave side of a pseudo-terminal (skiff-runc also makes it the controlling
terminal, so Ctrl-C and window-size changes reach the foreground job); a
resize is a TIOCSWINSZ on the master side, as a terminal emulator does. runc and
crun allocate the terminal themselves and hand its master side over a console
socket, as they do for containerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import subprocess
import termios
from collections.abc import AsyncIterator
from typing import Any

from proto import runtime_pb2 as pb
from runtime.runc import linux

from . import console
from .processes import wait

CHUNK = 32 * 1024
DRAIN_AFTER_EXIT = 1.0  # seconds to keep reading once the process has exited


def open_pty(container_root: str) -> tuple[int, int]:
    """A pseudo-terminal from the container's own devpts, so that inside it the terminal
    is /dev/pts/N as with runc's console socket; the daemon's own as a fallback."""
    try:
        master, slave, _ = linux.open_pty(f"{container_root}/dev/pts")
    except OSError:
        return os.openpty()
    return master, slave


def resize(fd: int, width: int, height: int) -> None:
    if width and height:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await asyncio.sleep(0.01)


class ExecSession:
    def __init__(
        self,
        argv: list[str],
        tty: bool,
        stdin: bool,
        container_pid: int,
        console_socket: str = "",
    ) -> None:
        """`console_socket`: where runc or crun will send the terminal (it is already
        on their command line); without it a terminal is allocated here."""
        self.argv, self.tty, self.stdin = argv, tty, stdin
        self.console_socket = console_socket
        self.container_root = f"/proc/{container_pid}/root"
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.readers: dict[int, str] = {}
        self.input_fd = -1
        self.master = -1

    def _spawn(self, width: int, height: int) -> subprocess.Popen[bytes]:
        if self.tty and self.console_socket:
            with console.listen(self.console_socket) as server:
                proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
                master = console.receive_terminal(server, lambda: proc.poll() is not None)
                if master is None:  # it failed, and said why on stderr
                    proc.kill()
                    err = proc.communicate()[1].decode(errors="replace").strip()
                    raise OSError(err or "the OCI runtime sent no terminal")
                self.master = master
            resize(self.master, width, height)
            self.readers = {self.master: "stdout"}
            self.input_fd = self.master if self.stdin else -1
        elif self.tty:
            self.master, slave = open_pty(self.container_root)
            resize(self.master, width, height)
            try:
                proc = subprocess.Popen(
                    self.argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
                )
            finally:
                os.close(slave)
            self.readers = {self.master: "stdout"}
            self.input_fd = self.master if self.stdin else -1
        else:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            assert proc.stdout is not None and proc.stderr is not None
            self.readers = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
            self.input_fd = proc.stdin.fileno() if proc.stdin else -1
        for fd in [*self.readers, self.input_fd]:
            if fd >= 0:
                os.set_blocking(fd, False)
        return proc

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError as e:  # a pty master reads EIO once every slave is closed
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(fd)
        self.queue.put_nowait((self.readers[fd], data))

    async def _pump_input(self, inputs: AsyncIterator[Any], proc: subprocess.Popen[bytes]) -> None:
        async for message in inputs:
            if message.resize_width and self.master >= 0:
                resize(self.master, message.resize_width, message.resize_height)
            if message.stdin_data and self.input_fd >= 0:
                with contextlib.suppress(BrokenPipeError):
                    await _write_all(self.input_fd, message.stdin_data)
            if message.stdin_close and self.input_fd >= 0:
                if self.tty:  # a terminal has no end of file of its own: send Ctrl-D
                    with contextlib.suppress(OSError):
                        await _write_all(self.input_fd, b"\x04")
                elif proc.stdin is not None:
                    proc.stdin.close()
                self.input_fd = -1

    async def run(
        self, inputs: AsyncIterator[Any], width: int, height: int
    ) -> AsyncIterator[pb.ExecOutput]:
        loop = asyncio.get_running_loop()
        try:
            proc = await asyncio.to_thread(self._spawn, width, height)
        except OSError as e:
            yield pb.ExecOutput(stderr=f"{e}\n".encode(), exited=True, exit_code=126)
            return
        for fd in self.readers:
            loop.add_reader(fd, self._readable, fd)
        pump = asyncio.create_task(self._pump_input(inputs, proc))
        exited = asyncio.ensure_future(wait(proc))
        open_streams = len(self.readers)
        drain_until = 0.0
        try:
            while open_streams:
                get = asyncio.ensure_future(self.queue.get())
                if exited.done():
                    drain_until = drain_until or loop.time() + DRAIN_AFTER_EXIT
                    waiting, timeout = {get}, max(drain_until - loop.time(), 0)
                else:
                    waiting, timeout = {get, exited}, None
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when="FIRST_COMPLETED"
                )
                if get not in done:
                    get.cancel()
                    if not done:
                        break  # it exited, and something it left behind still holds its output
                    continue
                stream, data = get.result()
                if not data:
                    open_streams -= 1
                    continue
                yield pb.ExecOutput(**{stream: data})
            code = await exited
            yield pb.ExecOutput(exited=True, exit_code=code if code >= 0 else 128 - code)
        finally:
            pump.cancel()
            for fd in self.readers:
                loop.remove_reader(fd)
            if proc.poll() is None:  # the client went away: end the session's process
                proc.kill()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            if self.master >= 0:
                os.close(self.master)
