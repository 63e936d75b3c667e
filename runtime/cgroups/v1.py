"""cgroup v1: one directory per controller hierarchy, the same relative path in each.

Paths are strings and files are read with plain `open`: skiff-runc imports this on
every container start, and pathlib costs milliseconds to import.
"""

from __future__ import annotations

import errno
import os
import time

from .resources import Resources

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


class CgroupV1:
    version = "v1"

    def __init__(self, path: str, root: str | os.PathLike[str] = "/sys/fs/cgroup") -> None:
        self.path = "/" + path.strip("/")
        self.root = os.fspath(root)

    def dir(self, controller: str) -> str:
        return os.path.join(self.root, controller, self.path.lstrip("/"))

    def create(self) -> None:
        for c in CONTROLLERS:
            if os.path.isdir(os.path.join(self.root, c)):
                os.makedirs(self.dir(c), exist_ok=True)

    def _write(self, controller: str, name: str, value: str | int) -> None:
        with open(os.path.join(self.dir(controller), name), "w") as f:
            f.write(str(value))

    def apply(self, r: Resources) -> None:
        if r.cpu_shares is not None:
            self._write("cpu", "cpu.shares", r.cpu_shares)
        if r.cpu_quota is not None and r.cpu_quota > 0:
            self._write("cpu", "cpu.cfs_period_us", r.cpu_period)
            self._write("cpu", "cpu.cfs_quota_us", r.cpu_quota)
        if r.memory_limit is not None:
            self._write("memory", "memory.limit_in_bytes", r.memory_limit)
            # No swap beyond the limit, as the kubelet configures containers.
            try:  # (not contextlib.suppress: contextlib costs 4 ms to import)
                self._write("memory", "memory.memsw.limit_in_bytes", r.memory_limit)
            except OSError:
                pass
        if r.pids_limit is not None:
            self._write("pids", "pids.max", r.pids_limit if r.pids_limit > 0 else "max")

    def add(self, pid: int) -> None:
        for c in CONTROLLERS:
            if os.path.isdir(self.dir(c)):
                self._write(c, "cgroup.procs", pid)

    def pids(self) -> list[int]:
        for controller in ("pids", "memory"):
            procs = os.path.join(self.dir(controller), "cgroup.procs")
            if os.path.exists(procs):
                return [int(p) for p in _read(procs).split()]
        return []

    def oom_events_file(self) -> str:
        """Where the kernel counts OOM kills, as an `oom_kill N` line."""
        return os.path.join(self.dir("memory"), "memory.oom_control")

    def oom_killed(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup (memory.oom_control)."""
        control = self.oom_events_file()
        if not os.path.exists(control):
            return 0
        for line in _read(control).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def cpu_usage_ns(self) -> int:
        usage = os.path.join(self.dir("cpuacct"), "cpuacct.usage")
        return int(_read(usage)) if os.path.exists(usage) else 0

    def memory_usage(self) -> int:
        usage = os.path.join(self.dir("memory"), "memory.usage_in_bytes")
        return int(_read(usage)) if os.path.exists(usage) else 0

    def memory_stats(self) -> dict[str, int]:
        """usage, working_set (usage less inactive file cache, as cAdvisor and so the
        kubelet's eviction and `kubectl top` count) and rss, in bytes."""
        usage = self.memory_usage()
        stat: dict[str, int] = {}
        f = os.path.join(self.dir("memory"), "memory.stat")
        if os.path.exists(f):
            for line in _read(f).splitlines():
                key, _, value = line.partition(" ")
                stat[key] = int(value)
        inactive = stat.get("total_inactive_file", 0)
        return {
            "usage": usage,
            "working_set": max(usage - inactive, 0),
            "rss": stat.get("total_rss", 0),
        }

    def delete(self, timeout: float = 5.0) -> None:
        """Remove the cgroup once its processes are gone (rmdir fails while busy), from
        every hierarchy, not only those skiff writes to: runc and crun make it in all
        that are mounted (cpuset, devices, the v2 mount of a hybrid machine, a hugetlb
        hierarchy mounted for crun), and a pod's cgroup must leave none behind."""
        deadline = time.monotonic() + timeout
        for hierarchy in sorted(os.listdir(self.root)):
            d = self.dir(hierarchy)
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
