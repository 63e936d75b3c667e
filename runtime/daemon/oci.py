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
import subprocess

from runtime.runc import LAUNCHER
from runtime.runc import main as skiff_runc


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

    def exec_argv(self, cid: str, cmd: list[str], tty: bool = False) -> list[str]:
        # skiff-runc makes the terminal the controlling one; runc and crun would want a
        # console socket for that, so they get the terminal as plain stdio instead.
        flags = ["--tty"] if tty and self.is_skiff_runc else []
        return [*self.command, "exec", *flags, cid, *cmd]
