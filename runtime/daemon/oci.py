"""The node's OCI runtime as the daemon calls it: skiff-runc, runc or crun.

runc and crun are programs, run for each call. With skiff-runc the calls that
do not fork (`start`, `kill`, `delete`) run inside the daemon, in a worker
thread: they open a FIFO, send a signal, remove directories, which is no
reason to start an interpreter. `create` and `exec` fork, and forking a
threaded gRPC server is unsafe, so they always run in other processes (the
shim and a subprocess).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from runtime.runc import LAUNCHER
from runtime.runc import main as skiff_runc

EXEC_TTY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_tty.py")


class OciRuntime:
    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.skiff_runc_root = ""
        if LAUNCHER in command:
            rest = command[command.index(LAUNCHER) + 1 :]
            self.skiff_runc_root = (
                rest[rest.index("--root") + 1] if "--root" in rest else skiff_runc.DEFAULT_ROOT
            )

    @property
    def is_skiff_runc(self) -> bool:
        return bool(self.skiff_runc_root)

    def run_sync(self, *args: str) -> subprocess.CompletedProcess[str]:
        if self.is_skiff_runc and args[0] in ("start", "kill", "delete"):
            return self._in_process(*args)
        return subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=60)

    async def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Off the event loop: other calls go on while it runs."""
        return await asyncio.to_thread(self.run_sync, *args)

    def _in_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        root, cid = self.skiff_runc_root, [a for a in args[1:] if not a.startswith("-")]
        try:
            if args[0] == "start":
                skiff_runc.start(root, cid[0])
            elif args[0] == "kill":
                skiff_runc.kill(root, cid[0], cid[1] if len(cid) > 1 else "SIGTERM")
            else:
                skiff_runc.delete(root, cid[0], "--force" in args)
        except (skiff_runc.RuntimeError_, OSError) as e:
            return subprocess.CompletedProcess(list(args), 1, "", f"skiff-runc: {e}")
        return subprocess.CompletedProcess(list(args), 0, "", "")

    def exec_argv(
        self, cid: str, cmd: list[str], tty: bool = False, console_socket: str = ""
    ) -> list[str]:
        """skiff-runc takes the terminal on its stdin (and makes it the controlling one);
        runc and crun make their own and send it over `console_socket`."""
        if tty and not self.is_skiff_runc:
            # They hand over a terminal only when detached: exec_tty.py waits instead.
            pid_file = f"{console_socket}.pid"
            flags = ["-d", "--tty", "--console-socket", console_socket, "--pid-file", pid_file]
            waiter = [sys.executable, "-I", "-S", EXEC_TTY, pid_file]
            return [*waiter, *self.command, "exec", *flags, cid, *cmd]
        return [*self.command, "exec", *(["--tty"] if tty else []), cid, *cmd]
