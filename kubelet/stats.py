"""The Summary API (`/stats/summary`): the node's and each pod's CPU, memory and disk.

metrics-server, and skiff's apiserver in its place, read this document to
answer `kubectl top`. The node's figures come from /proc and statvfs, the
containers' from the runtime's ListContainerStats. CPU is reported both as a
cumulative `usageCoreNanoSeconds` (readers compute rates from two samples, as
metrics-server does) and as `usageNanoCores`, the rate since this kubelet's
previous sample, as cAdvisor reports it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rfc3339(ns: int) -> str:
    when = datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class NodeSample:
    time_ns: int
    cpu_ns: int  # cumulative non-idle CPU time of every core
    memory_total: int
    memory_available: int
    memory_free: int
    boot_time: int  # seconds since the epoch
    fs_capacity: int
    fs_available: int
    fs_inodes: int
    fs_inodes_free: int


def read_node(fs_path: str = "/", proc: str = "/proc") -> NodeSample:
    """One sample of the node from the kernel's counters."""
    cpu_ns, boot = 0, 0
    with open(f"{proc}/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                # user nice system idle iowait irq softirq steal ...: busy = all but idle+iowait
                v = [int(x) for x in line.split()[1:]]
                busy = sum(v[:8]) - v[3] - v[4]
                cpu_ns = busy * 1_000_000_000 // CLOCK_TICKS
            elif line.startswith("btime "):
                boot = int(line.split()[1])
    mem: dict[str, int] = {}
    with open(f"{proc}/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            mem[name] = int(rest.split()[0]) * 1024
    st = os.statvfs(fs_path)
    return NodeSample(
        time_ns=_now_ns(),
        cpu_ns=cpu_ns,
        memory_total=mem.get("MemTotal", 0),
        memory_available=mem.get("MemAvailable", mem.get("MemFree", 0)),
        memory_free=mem.get("MemFree", 0),
        boot_time=boot,
        fs_capacity=st.f_blocks * st.f_frsize,
        fs_available=st.f_bavail * st.f_frsize,
        fs_inodes=st.f_files,
        fs_inodes_free=st.f_ffree,
    )


def _now_ns() -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp() * 1e9)


def nano_cores(cpu_ns: int, time_ns: int, previous: tuple[int, int] | None) -> int | None:
    """The CPU rate in nanocores between a previous (cpu_ns, time_ns) and now."""
    if previous is None:
        return None
    d_cpu, d_time = cpu_ns - previous[0], time_ns - previous[1]
    if d_time <= 0 or d_cpu < 0:
        return None
    return d_cpu * 1_000_000_000 // d_time


def _cpu(time_ns: int, cpu_ns: int, rate: int | None) -> dict[str, Any]:
    cpu: dict[str, Any] = {"time": rfc3339(time_ns), "usageCoreNanoSeconds": cpu_ns}
    if rate is not None:
        cpu["usageNanoCores"] = rate
    return cpu


@dataclass(frozen=True)
class ContainerSample:
    pod_namespace: str
    pod_name: str
    pod_uid: str
    name: str
    time_ns: int
    start_ns: int
    cpu_ns: int
    working_set: int
    rss: int
    usage: int


def summary(
    node_name: str,
    node: NodeSample,
    containers: list[ContainerSample],
    previous: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    """The Summary document; `previous` maps "node" and "<ns>/<pod>/<container>" to the
    last (cpu_ns, time_ns) seen, for usageNanoCores, and is updated in place."""
    node_rate = nano_cores(node.cpu_ns, node.time_ns, previous.get("node"))
    previous["node"] = (node.cpu_ns, node.time_ns)
    now = rfc3339(node.time_ns)
    doc_node = {
        "nodeName": node_name,
        "startTime": rfc3339(node.boot_time * 1_000_000_000),
        "cpu": _cpu(node.time_ns, node.cpu_ns, node_rate),
        "memory": {
            "time": now,
            "availableBytes": node.memory_available,
            "usageBytes": node.memory_total - node.memory_free,
            "workingSetBytes": node.memory_total - node.memory_available,
            "rssBytes": node.memory_total - node.memory_available,
            "pageFaults": 0,
            "majorPageFaults": 0,
        },
        "fs": {
            "time": now,
            "availableBytes": node.fs_available,
            "capacityBytes": node.fs_capacity,
            "usedBytes": node.fs_capacity - node.fs_available,
            "inodesFree": node.fs_inodes_free,
            "inodes": node.fs_inodes,
            "inodesUsed": node.fs_inodes - node.fs_inodes_free,
        },
        "systemContainers": [],
    }
    pods: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in sorted(containers, key=lambda c: (c.pod_namespace, c.pod_name, c.name)):
        key = f"{c.pod_namespace}/{c.pod_name}/{c.name}"
        rate = nano_cores(c.cpu_ns, c.time_ns, previous.get(key))
        previous[key] = (c.cpu_ns, c.time_ns)
        pod = pods.setdefault(
            (c.pod_namespace, c.pod_name, c.pod_uid),
            {
                "podRef": {"name": c.pod_name, "namespace": c.pod_namespace, "uid": c.pod_uid},
                "startTime": rfc3339(c.start_ns),
                "containers": [],
                "cpu": {"time": rfc3339(c.time_ns), "usageCoreNanoSeconds": 0},
                "memory": {
                    "time": rfc3339(c.time_ns),
                    "usageBytes": 0,
                    "workingSetBytes": 0,
                    "rssBytes": 0,
                },
            },
        )
        pod["containers"].append(
            {
                "name": c.name,
                "startTime": rfc3339(c.start_ns),
                "cpu": _cpu(c.time_ns, c.cpu_ns, rate),
                "memory": {
                    "time": rfc3339(c.time_ns),
                    "usageBytes": c.usage,
                    "workingSetBytes": c.working_set,
                    "rssBytes": c.rss,
                },
            }
        )
        pod["cpu"]["usageCoreNanoSeconds"] += c.cpu_ns
        if rate is not None:
            pod["cpu"]["usageNanoCores"] = pod["cpu"].get("usageNanoCores", 0) + rate
        for field in ("usageBytes", "workingSetBytes", "rssBytes"):
            pod["memory"][field] += {
                "usageBytes": c.usage,
                "workingSetBytes": c.working_set,
                "rssBytes": c.rss,
            }[field]
    return {"node": doc_node, "pods": list(pods.values())}
