"""cgroup v2: one unified tree; controllers are enabled for children via subtree_control."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from .resources import Resources


class CgroupV2:
    version = "v2"

    def __init__(self, path: str, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.path = "/" + path.strip("/")
        self.root = root

    @property
    def dir(self) -> Path:
        return self.root / self.path.lstrip("/")

    def create(self) -> None:
        """Make the directory, enabling cpu, memory and pids in every parent on the way."""
        parts = [p for p in self.path.split("/") if p]
        current = self.root
        for part in parts:
            available = (
                (current / "cgroup.controllers").read_text().split()
                if (current / "cgroup.controllers").exists()
                else []
            )
            wanted = [c for c in ("cpu", "memory", "pids") if c in available]
            if wanted:
                (current / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            current = current / part
            current.mkdir(exist_ok=True)

    def _write(self, name: str, value: str | int) -> None:
        (self.dir / name).write_text(str(value))

    def apply(self, r: Resources) -> None:
        if r.cpu_shares is not None:
            self._write("cpu.weight", Resources.weight_from_shares(r.cpu_shares))
        if r.cpu_quota is not None and r.cpu_quota > 0:
            self._write("cpu.max", f"{r.cpu_quota} {r.cpu_period}")
        if r.memory_limit is not None:
            self._write("memory.max", r.memory_limit)
            if (self.dir / "memory.swap.max").exists():
                self._write("memory.swap.max", 0)
        if r.pids_limit is not None:
            self._write("pids.max", r.pids_limit if r.pids_limit > 0 else "max")

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", pid)

    def pids(self) -> list[int]:
        procs = self.dir / "cgroup.procs"
        return [int(p) for p in procs.read_text().split()] if procs.exists() else []

    def _keyed(self, name: str) -> dict[str, int]:
        f = self.dir / name
        if not f.exists():
            return {}
        out = {}
        for line in f.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
        return out

    def oom_events_file(self) -> Path:
        """Where the kernel counts OOM kills, as an `oom_kill N` line."""
        return self.dir / "memory.events"

    def oom_killed(self) -> int:
        return self._keyed("memory.events").get("oom_kill", 0)

    def cpu_usage_ns(self) -> int:
        return self._keyed("cpu.stat").get("usage_usec", 0) * 1000

    def memory_usage(self) -> int:
        f = self.dir / "memory.current"
        return int(f.read_text()) if f.exists() else 0

    def delete(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.dir.is_dir():
            try:
                os.rmdir(self.dir)
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
