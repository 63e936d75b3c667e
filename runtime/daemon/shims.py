"""Starting shims, with one spare kept ready.

A container's start waits for its shim, and a shim is a fresh interpreter. So
the daemon keeps one shim started ahead (`shim.py --spare`), which with
skiff-runc has also forked a child with skiff-runc imported; CreateContainer
hands it the container on its stdin and starts the next spare in the
background. A spare whose daemon goes away reads end-of-file and exits: there
is nothing to recover after a restart. Without a live spare, a shim is
started for the container directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import Any

from . import shim
from .processes import reap_later, wait


class ShimLauncher:
    def __init__(self, oci_command: list[str]) -> None:
        self.oci_command = oci_command
        self.spare: subprocess.Popen[bytes] | None = None
        self._refilling: asyncio.Task[None] | None = None

    def _spawn_spare(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            shim.spare_command(self.oci_command),
            start_new_session=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # a used spare writes to its container's shim.log
        )

    async def refill(self) -> None:
        if self.spare is None or self.spare.poll() is not None:
            spare = await asyncio.to_thread(self._spawn_spare)
            if self.spare is None or self.spare.poll() is not None:
                self.spare = spare
            else:  # another refill won: this one is not needed
                self._retire(spare)

    def _retire(self, spare: subprocess.Popen[bytes]) -> None:
        if spare.stdin is not None:
            with contextlib.suppress(OSError):
                spare.stdin.close()  # end-of-file: it exits
        reap_later(spare)

    async def start(self, cdir: Path, c: dict[str, Any]) -> subprocess.Popen[bytes]:
        """A shim for the container recorded in `cdir` (the caller reaps it)."""
        spare, self.spare = self.spare, None
        self._refilling = asyncio.ensure_future(self.refill())
        if spare is not None and spare.poll() is None and spare.stdin is not None:
            try:
                spare.stdin.write(shim.assignment(str(cdir), c["id"], c["log_path"], c["cgroup"]))
                spare.stdin.close()
                return spare
            except OSError:
                pass  # it died meanwhile: start one for this container
        return await asyncio.to_thread(self._direct, cdir, c)

    def _direct(self, cdir: Path, c: dict[str, Any]) -> subprocess.Popen[bytes]:
        argv = shim.command(str(cdir), c["id"], c["log_path"], c["cgroup"], self.oci_command)
        with open(cdir / "shim.log", "ab") as log:
            return subprocess.Popen(
                argv,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def close(self) -> None:
        if self._refilling is not None:
            await self._refilling
        if self.spare is not None:
            spare, self.spare = self.spare, None
            if spare.stdin is not None:
                spare.stdin.close()
            await wait(spare)
