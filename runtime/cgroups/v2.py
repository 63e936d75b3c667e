"""cgroup v2: one unified tree; controllers are enabled for children via subtree_control.

Paths are strings, as in v1.py, to keep skiff-runc's start-up lean.
"""

from __future__ import annotations

import errno
import os
import time

from .resources import Resources


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


class CgroupV2:
    version = "v2"

    def __init__(self, path: str, root: str | os.PathLike[str] = "/sys/fs/cgroup") -> None:
        self.path = "/" + path.strip("/")
        self.root = os.fspath(root)

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.path.lstrip("/"))

    def create(self) -> None:
        """Make the directory, enabling cpu, memory and pids in every parent on the way."""
        current = self.root
        for part in [p for p in self.path.split("/") if p]:
            controllers = os.path.join(current, "cgroup.controllers")
            available = _read(controllers).split() if os.path.exists(controllers) else []
            wanted = [c for c in ("cpu", "memory", "pids") if c in available]
            if wanted:
                _write(
                    os.path.join(current, "cgroup.subtree_control"),
                    " ".join(f"+{c}" for c in wanted),
                )
            current = os.path.join(current, part)
            os.makedirs(current, exist_ok=True)

    def _write(self, name: str, value: str | int) -> None:
        _write(os.path.join(self.dir, name), value)

    def apply(self, r: Resources) -> None:
        if r.cpu_shares is not None:
            self._write("cpu.weight", Resources.weight_from_shares(r.cpu_shares))
        if r.cpu_quota is not None and r.cpu_quota > 0:
            self._write("cpu.max", f"{r.cpu_quota} {r.cpu_period}")
        if r.memory_limit is not None:
            self._write("memory.max", r.memory_limit)
            if os.path.exists(os.path.join(self.dir, "memory.swap.max")):
                self._write("memory.swap.max", 0)
        if r.pids_limit is not None:
            self._write("pids.max", r.pids_limit if r.pids_limit > 0 else "max")

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", pid)

    def pids(self) -> list[int]:
        procs = os.path.join(self.dir, "cgroup.procs")
        return [int(p) for p in _read(procs).split()] if os.path.exists(procs) else []

    def _keyed(self, name: str) -> dict[str, int]:
        f = os.path.join(self.dir, name)
        if not os.path.exists(f):
            return {}
        out = {}
        for line in _read(f).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
        return out

    def oom_events_file(self) -> str:
        """Where the kernel counts OOM kills, as an `oom_kill N` line."""
        return os.path.join(self.dir, "memory.events")

    def oom_killed(self) -> int:
        return self._keyed("memory.events").get("oom_kill", 0)

    def cpu_usage_ns(self) -> int:
        return self._keyed("cpu.stat").get("usage_usec", 0) * 1000

    def memory_usage(self) -> int:
        f = os.path.join(self.dir, "memory.current")
        return int(_read(f)) if os.path.exists(f) else 0

    def memory_stats(self) -> dict[str, int]:
        """usage, working_set (usage less inactive file cache, as cAdvisor computes it)
        and rss (anonymous memory), in bytes."""
        usage = self.memory_usage()
        stat = self._keyed("memory.stat")
        return {
            "usage": usage,
            "working_set": max(usage - stat.get("inactive_file", 0), 0),
            "rss": stat.get("anon", 0),
        }

    def delete(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while os.path.isdir(self.dir):
            try:
                os.rmdir(self.dir)
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
