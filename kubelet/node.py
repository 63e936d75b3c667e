"""The Node this kubelet stands for: registration, heartbeat Lease and node status.

- Registration creates the Node with what the machine has (capacity), what pods
  may use (allocatable: capacity minus `--system-reserved`), its addresses, the
  node info `kubectl describe node` shows and the images it holds.
- The heartbeat renews the Lease `kube-node-lease/<node>` every 10 s; the
  node-lifecycle controller marks a node whose Lease goes stale NotReady.
- Node status (conditions Ready, MemoryPressure, DiskPressure, PIDPressure) is
  posted when a condition changes and at least every minute, as the kubelet's
  nodeStatusReportFrequency. Ready follows the runtime's own Status RPC
  (RuntimeReady and NetworkReady).
- When the controller-manager gives the node a pod CIDR, it is handed to the
  runtime (UpdateRuntimeConfig) so that pods get addresses from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx

from api.meta import now_rfc3339
from api.quantity import milli_value, value
from client import errors
from client.lease import renew_lease
from client.nodeaddress import default_node_ip
from client.rest import Client
from proto import runtime_pb2 as pb

log = logging.getLogger("skiff.kubelet.node")

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
LEASE_RENEW_PERIOD = 10.0
STATUS_CHECK_PERIOD = 10.0
POD_CIDR_POLL = 0.25  # until there is a pod CIDR: Ready (what `up` waits for) waits on it
STATUS_REPORT_PERIOD = 60.0
MAX_PODS = 110
KUBELET_VERSION = "v1.32.0-skiff"  # the apiserver's /version gitVersion
MEMORY_PRESSURE_BELOW = 100 * 1024 * 1024  # the kubelet's default eviction threshold
DISK_PRESSURE_BELOW = 0.10
PID_PRESSURE_ABOVE = 0.90


@dataclass(frozen=True)
class NodeSettings:
    name: str
    ip: str
    port: int
    root_dir: Path
    system_reserved: dict[str, str] = field(default_factory=dict)


# -- what the machine has ---------------------------------------------------------------------


def _meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0]) * 1024
    return out


def capacity(root_dir: Path) -> dict[str, str]:
    disk = os.statvfs(root_dir if root_dir.exists() else "/")
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{_meminfo()['MemTotal'] // 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{disk.f_blocks * disk.f_frsize // 1024}Ki",
    }


def allocatable(cap: dict[str, str], reserved: dict[str, str]) -> dict[str, str]:
    """Capacity minus --system-reserved, never below zero."""
    out = dict(cap)
    if "cpu" in reserved:
        millis = max(milli_value(cap["cpu"]) - milli_value(reserved["cpu"]), 0)
        out["cpu"] = f"{millis}m" if millis % 1000 else str(millis // 1000)
    for name in ("memory", "ephemeral-storage"):
        if name in reserved:
            out[name] = f"{max(value(cap[name]) - value(reserved[name]), 0) // 1024}Ki"
    return out


def parse_reserved(text: str) -> dict[str, str]:
    """`cpu=500m,memory=1Gi` -> {"cpu": "500m", "memory": "1Gi"}."""
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    bad = [p[0] for p in pairs if len(p) != 2]
    if bad:
        raise ValueError(f"--system-reserved: expected name=quantity, got {bad[0]!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def choose_node_ip(flag: str) -> tuple[str, str]:
    """(address, how it was chosen): --node-ip, else client/nodeaddress.py's choice."""
    if flag:
        return flag, "from --node-ip"
    return default_node_ip()


def _os_image() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return "Linux"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def node_info(runtime_version: pb.VersionResponse) -> dict[str, str]:
    return {
        "machineID": _read("/etc/machine-id"),
        "systemUUID": _read("/sys/class/dmi/id/product_uuid") or _read("/etc/machine-id"),
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": _os_image(),
        "containerRuntimeVersion": (
            f"{runtime_version.runtime_name}://{runtime_version.runtime_version}"
        ),
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": architecture(),
    }


# -- conditions -------------------------------------------------------------------------------


def pressure(root_dir: Path) -> dict[str, bool]:
    mem = _meminfo()
    disk = os.statvfs(root_dir if root_dir.exists() else "/")
    pid_max = int(_read("/proc/sys/kernel/pid_max") or 4194304)
    pids = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
    return {
        "MemoryPressure": mem.get("MemAvailable", mem["MemTotal"]) < MEMORY_PRESSURE_BELOW,
        "DiskPressure": disk.f_bavail < disk.f_blocks * DISK_PRESSURE_BELOW,
        "PIDPressure": pids > pid_max * PID_PRESSURE_ABOVE,
    }


_PRESSURE_WORDS = {
    "MemoryPressure": (
        ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
    ),
    "DiskPressure": (
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("KubeletHasDiskPressure", "kubelet has disk pressure"),
    ),
    "PIDPressure": (
        ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
    ),
}


def conditions(
    pressures: dict[str, bool], runtime_problems: list[str], old: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """The four node conditions, with Kubernetes' reasons; a lastTransitionTime moves only
    when its status does."""
    before = {c["type"]: c for c in old}

    def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        text = "True" if status else "False"
        prior = before.get(kind) or {}
        return {
            "type": kind,
            "status": text,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": prior["lastTransitionTime"]
            if prior.get("status") == text
            else now,
        }

    out = []
    for kind, under_pressure in pressures.items():
        reason, message = _PRESSURE_WORDS[kind][under_pressure]
        out.append(condition(kind, under_pressure, reason, message))
    if runtime_problems:
        out.append(condition("Ready", False, "KubeletNotReady", "; ".join(runtime_problems)))
    else:
        out.append(condition("Ready", True, "KubeletReady", "kubelet is posting ready status"))
    return out


async def runtime_problems(runtime: Any) -> list[str]:
    """What the runtime's Status RPC says is not ready, in the kubelet's words."""
    try:
        status = await runtime.Status(pb.StatusRequest(), timeout=10)
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            # An older daemon without Status: it answers, so it runs; its network we
            # cannot ask about.
            await runtime.Version(pb.VersionRequest(), timeout=10)
            return []
        return [f"container runtime is down: {e.details()}"]
    problems = []
    for c in status.status.conditions:
        if not c.status:
            what = "container runtime" if c.type == "RuntimeReady" else "container runtime network"
            problems.append(
                f"{what} not ready: {c.type}=false reason:{c.reason} message:{c.message}"
            )
    return problems


# -- the loop ---------------------------------------------------------------------------------


class NodeAgent:
    def __init__(self, client: Client, runtime: Any, images: Any, settings: NodeSettings) -> None:
        self.client, self.runtime, self.images, self.s = client, runtime, images, settings
        self.node: dict[str, Any] = {}
        self.pod_cidr = ""
        self._reported_at = 0.0
        self._last_statuses: dict[str, str] = {}

    def owner_reference(self) -> dict[str, Any]:
        meta = self.node["metadata"]
        return {"apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta["uid"]}

    async def _images(self) -> list[dict[str, Any]]:
        listed = await self.images.ListImages(pb.ListImagesRequest())
        return [
            {"names": [*i.repo_digests, *i.repo_tags], "sizeBytes": int(i.size)}
            for i in sorted(listed.images, key=lambda i: -i.size)
        ]

    async def _status(self, old: dict[str, Any]) -> dict[str, Any]:
        cap = await asyncio.to_thread(capacity, self.s.root_dir)
        version = await self.runtime.Version(pb.VersionRequest())
        problems = await runtime_problems(self.runtime)
        pressures = await asyncio.to_thread(pressure, self.s.root_dir)
        return {
            "capacity": cap,
            "allocatable": allocatable(cap, self.s.system_reserved),
            "conditions": conditions(
                pressures, problems, old.get("conditions") or [], now_rfc3339()
            ),
            "addresses": [
                {"type": "InternalIP", "address": self.s.ip},
                {"type": "Hostname", "address": self.s.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.s.port}},
            "nodeInfo": node_info(version),
            "images": await self._images(),
        }

    async def register(self) -> dict[str, Any]:
        """Create the Node, or take over the one that exists under this name."""
        labels = {
            "kubernetes.io/hostname": self.s.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": architecture(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": architecture(),
        }
        delay = 0.5
        while True:
            try:
                try:
                    existing = await self.client.get("v1", "Node", "", self.s.name)
                except errors.NotFound:
                    existing = None
                if existing is None:
                    node = {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {"name": self.s.name, "labels": labels},
                        "spec": {},
                    }
                    created = await self.client.create(node)
                    log.info("registered node %s", self.s.name)
                else:
                    created = existing
                    log.info("node %s exists: taking it over", self.s.name)
                self.node = await self.client.patch(
                    "v1",
                    "Node",
                    "",
                    self.s.name,
                    {"status": await self._status(created.get("status") or {})},
                    sub="status",
                )
                self._reported_at = time.monotonic()
                return self.node
            except errors.Conflict:
                continue  # created meanwhile by another writer: take it over
            except (errors.ApiError, httpx.HTTPError) as e:
                log.warning("registering node %s failed: %s; retrying", self.s.name, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def heartbeat(self) -> None:
        """Renew the node's Lease every 10 s."""
        while True:
            try:
                await renew_lease(
                    self.client,
                    namespace=LEASE_NAMESPACE,
                    name=self.s.name,
                    holder=self.s.name,
                    duration_seconds=LEASE_DURATION,
                    owner_references=[self.owner_reference()],
                )
            except (errors.ApiError, httpx.HTTPError, OSError) as e:
                log.warning("renewing the node Lease failed: %s", e)
            await asyncio.sleep(LEASE_RENEW_PERIOD)

    async def report(self) -> None:
        """Post node status when a condition changes, and at least every minute; hand a
        new pod CIDR to the runtime."""
        while True:
            # At once on start: a pod CIDR handed over at registration makes the node
            # Ready now, not a status period later.
            try:
                await self.report_once()
            except (errors.ApiError, httpx.HTTPError, OSError) as e:
                log.warning("posting node status failed: %s", e)
            except grpc.aio.AioRpcError as e:
                log.warning("asking the runtime for node status failed: %s", e.details())
            # Until the node has a pod CIDR, look for it often: pods and Ready wait on it.
            await asyncio.sleep(STATUS_CHECK_PERIOD if self.pod_cidr else POD_CIDR_POLL)

    async def report_once(self) -> None:
        current = await self.client.get("v1", "Node", "", self.s.name)
        await self.pass_pod_cidr(current)
        if not self.pod_cidr and time.monotonic() - self._reported_at < STATUS_CHECK_PERIOD:
            return
        status = await self._status(current.get("status") or {})
        statuses = {c["type"]: c["status"] for c in status["conditions"]}
        stale = time.monotonic() - self._reported_at >= STATUS_REPORT_PERIOD
        old = {
            c["type"]: c["status"] for c in (current.get("status") or {}).get("conditions") or []
        }
        if statuses == old and not stale:
            return
        self.node = await self.client.patch(
            "v1", "Node", "", self.s.name, {"status": status}, sub="status"
        )
        self._reported_at = time.monotonic()

    async def pass_pod_cidr(self, node: dict[str, Any]) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        if cidr and cidr != self.pod_cidr:
            await self.runtime.UpdateRuntimeConfig(
                pb.UpdateRuntimeConfigRequest(
                    runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=cidr))
                )
            )
            log.info("pod CIDR %s handed to the runtime", cidr)
            self.pod_cidr = cidr

    async def run(self) -> None:
        await asyncio.gather(self.heartbeat(), self.report())


def hostname() -> str:
    return socket.gethostname().lower()
