"""Status (what the kubelet's Ready condition waits for), ListContainerStats (what
`kubectl top` and eviction read) and the pod cgroup the runtime makes, limits and
removes for the kubelet's cgroup_parent."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from proto import runtime_pb2 as pb
from runtime.cgroups import detect
from tests.polling import eventually

MiB = 1024 * 1024


def conditions(node: Any) -> dict[str, Any]:
    status = node.api.Status(pb.StatusRequest()).status
    return {c.type: c for c in status.conditions}


@pytest.mark.no_pod_cidr
def test_network_ready_once_the_pod_cidr_is_known(node: Any) -> None:
    before = conditions(node)
    assert before["RuntimeReady"].status is True
    network = before["NetworkReady"]
    assert network.status is False and network.reason == "NetworkPluginNotReady"
    assert "pod CIDR" in network.message
    config = pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.244.8.0/24"))
    node.api.UpdateRuntimeConfig(pb.UpdateRuntimeConfigRequest(runtime_config=config))
    after = conditions(node)
    assert after["RuntimeReady"].status is True
    assert after["NetworkReady"].status is True and after["NetworkReady"].reason == ""
    verbose = node.api.Status(pb.StatusRequest(verbose=True))
    assert json.loads(verbose.info["config"])["podCIDR"] == "10.244.8.0/24"


def stats(node: Any, **request: Any) -> dict[str, Any]:
    response = node.api.ListContainerStats(pb.ListContainerStatsRequest(**request))
    return {s.container_id: s for s in response.stats}


def test_container_stats_show_cpu_and_memory(node: Any) -> None:
    sid = node.sandbox("stats")
    # 64 MiB held in a shell variable, then idle (`exit 0` keeps the shell from
    # exec'ing its last command, which would give the memory back).
    allocate = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ready; sleep 600; exit 0"
    hog = node.run(sid, "hog", ["sh", "-c", allocate])
    idle = node.run(sid, "idle", ["sleep", "600"])
    done = node.run(sid, "done", ["sh", "-c", "read x"])  # exits below
    node.api.StopContainer(pb.StopContainerRequest(container_id=done, timeout=0))
    node.wait_state(done, pb.CONTAINER_EXITED)
    log = Path(node.status(hog).log_path)
    eventually(
        lambda: "ready" in (log.read_text() if log.exists() else ""),
        30,
        "the hog to allocate",
        interval=0.1,
    )
    all_stats = stats(node)
    assert set(all_stats) == {hog, idle}  # running containers only
    s = all_stats[hog]
    assert s.pod_sandbox_id == sid and s.metadata.name == "hog"
    assert s.memory_rss_bytes >= 64 * MiB
    assert s.memory_usage_bytes >= s.memory_working_set_bytes >= s.memory_rss_bytes
    assert s.cpu_usage_core_nanoseconds > 0 and s.timestamp > 0
    assert all_stats[idle].memory_working_set_bytes < 16 * MiB
    assert set(stats(node, container_id=idle)) == {idle}
    assert set(stats(node, pod_sandbox_id="another-pod")) == set()


def _cgroup_dir(node: Any, controller: str, relative: str) -> Path:
    if detect() == "v2":
        return Path("/sys/fs/cgroup", node.cgroup_root, relative)
    return Path("/sys/fs/cgroup", controller, node.cgroup_root, relative)


def test_the_runtime_makes_limits_and_removes_the_pod_cgroup(node: Any) -> None:
    uid = uuid.uuid4().hex
    parent = f"kubepods/burstable/pod{uid}"
    resources = pb.LinuxContainerResources(
        cpu_period=100_000, cpu_quota=50_000, cpu_shares=512, memory_limit_in_bytes=48 * MiB
    )
    sid = node.sandbox("limited", cgroup_parent=parent, resources=resources)
    memory = _cgroup_dir(node, "memory", parent)
    if detect() == "v2":
        assert (memory / "memory.max").read_text().strip() == str(48 * MiB)
        assert (memory / "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        assert (memory / "memory.limit_in_bytes").read_text().strip() == str(48 * MiB)
        cpu = _cgroup_dir(node, "cpu", parent)
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cpu / "cpu.shares").read_text().strip() == "512"
    # Its containers' cgroups are below it, and the pod's limit holds for them all.
    pid = node.status(node.run(sid, "idle", ["sleep", "600"])).pid
    line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if "memory" in x)
    assert f"/{node.cgroup_root}/{parent}/" in line
    hog = node.run(sid, "hog", ["sh", "-c", "x=$(head -c 104857600 /dev/zero | tr '\\0' a)"])
    assert node.wait_state(hog, pb.CONTAINER_EXITED, timeout=60).reason == "OOMKilled"
    # Removing the pod removes its cgroup; the QoS parents are the kubelet's and stay.
    node.api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert not memory.exists()
    assert memory.parent.is_dir() and memory.parent.name == "burstable"
    # Without a cgroup_parent the pod gets one of its own below --cgroup-root.
    other = node.sandbox("plain")
    assert _cgroup_dir(node, "memory", f"pod{other[:12]}").is_dir()
    node.api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=other))
    assert not _cgroup_dir(node, "memory", f"pod{other[:12]}").exists()
    assert os.path.isdir(_cgroup_dir(node, "memory", ""))


def test_a_pods_next_sandbox_keeps_the_pod_cgroup(node: Any) -> None:
    """The kubelet makes a pod's new sandbox before it removes the old one: both are the
    pod's, and removing the old one must not take the cgroup from the new one."""
    parent = f"kubepods/pod{uuid.uuid4().hex}"
    old = node.sandbox("again", cgroup_parent=parent)
    new = node.sandbox("again", cgroup_parent=parent)
    pid = node.status(node.run(new, "idle", ["sleep", "600"])).pid
    node.api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=old))
    memory = _cgroup_dir(node, "memory", parent)
    assert memory.is_dir() and Path(f"/proc/{pid}").exists()
    node.api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=new))
    assert not memory.exists()
