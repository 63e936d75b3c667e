"""cgroup v1: one directory per controller hierarchy, the same relative path in each."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from .resources import Resources

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")


class CgroupV1:
    version = "v1"

    def __init__(self, path: str, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.path = "/" + path.strip("/")
        self.root = root

    def dir(self, controller: str) -> Path:
        return self.root / controller / self.path.lstrip("/")

    def create(self) -> None:
        for c in CONTROLLERS:
            if (self.root / c).is_dir():
                self.dir(c).mkdir(parents=True, exist_ok=True)

    def _write(self, controller: str, name: str, value: str | int) -> None:
        (self.dir(controller) / name).write_text(str(value))

    def apply(self, r: Resources) -> None:
        if r.cpu_shares is not None:
            self._write("cpu", "cpu.shares", r.cpu_shares)
        if r.cpu_quota is not None and r.cpu_quota > 0:
            self._write("cpu", "cpu.cfs_period_us", r.cpu_period)
            self._write("cpu", "cpu.cfs_quota_us", r.cpu_quota)
        if r.memory_limit is not None:
            self._write("memory", "memory.limit_in_bytes", r.memory_limit)
            # No swap beyond the limit, as the kubelet configures containers.
            with contextlib.suppress(OSError):
                self._write("memory", "memory.memsw.limit_in_bytes", r.memory_limit)
        if r.pids_limit is not None:
            self._write("pids", "pids.max", r.pids_limit if r.pids_limit > 0 else "max")

    def add(self, pid: int) -> None:
        for c in CONTROLLERS:
            if self.dir(c).is_dir():
                (self.dir(c) / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        procs = self.dir("pids") / "cgroup.procs"
        if not procs.exists():
            procs = self.dir("memory") / "cgroup.procs"
        if not procs.exists():
            return []
        return [int(p) for p in procs.read_text().split()]

    def oom_events_file(self) -> Path:
        """Where the kernel counts OOM kills, as an `oom_kill N` line."""
        return self.dir("memory") / "memory.oom_control"

    def oom_killed(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup (memory.oom_control)."""
        control = self.oom_events_file()
        if not control.exists():
            return 0
        for line in control.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def cpu_usage_ns(self) -> int:
        usage = self.dir("cpuacct") / "cpuacct.usage"
        return int(usage.read_text()) if usage.exists() else 0

    def memory_usage(self) -> int:
        usage = self.dir("memory") / "memory.usage_in_bytes"
        return int(usage.read_text()) if usage.exists() else 0

    def delete(self, timeout: float = 5.0) -> None:
        """Remove the cgroup once its processes are gone (rmdir fails while busy)."""
        deadline = time.monotonic() + timeout
        for c in CONTROLLERS:
            d = self.dir(c)
            while d.is_dir():
                try:
                    os.rmdir(d)
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
