"""The OCI bundle of a container: config.json from the CRI container config and the image.

Command and args follow Kubernetes' rules: `command` replaces the image's
Entrypoint, `args` replaces its Cmd, and without `command` the image's
Entrypoint is kept. The image's Env, WorkingDir and User apply unless the
container sets its own (see users.py for how a User is resolved).
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

from proto import runtime_pb2 as pb
from runtime.images.store import Image

from . import users

# Docker's default capability set, which Kubernetes containers get unless told otherwise.
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
MASKED = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]
READONLY = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def merge_env(image_env: list[str], container_env: list[tuple[str, str]]) -> list[str]:
    """The image's Env with the container's on top: a variable set in both takes the
    container's value, in the image's place."""
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    for key, value in container_env:
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def process_args(config: pb.ContainerConfig, image: Image) -> list[str]:
    entrypoint = list(image.config.get("Entrypoint") or [])
    cmd = list(image.config.get("Cmd") or [])
    if config.command:
        return [*config.command, *config.args]
    return [*entrypoint, *(config.args or cmd)]


def capabilities(config: pb.ContainerConfig) -> list[str]:
    sc = config.linux.security_context
    if sc.privileged:
        from runtime.runc.linux import CAPABILITIES

        return list(CAPABILITIES)
    caps = list(DEFAULT_CAPABILITIES)
    drops = {_cap(c) for c in sc.capabilities.drop_capabilities}
    if "CAP_ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    caps += [_cap(c) for c in sc.capabilities.add_capabilities if _cap(c) not in caps]
    return caps


def _cap(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else f"CAP_{name}"


def oci_config(
    config: pb.ContainerConfig,
    image: Image,
    rootfs: Path,
    *,
    hostname: str,
    netns: str,
    cgroup: str,
    ipc_ns: str = "",
    uts_ns: str = "",
    host_pid: bool = False,
    pod_files: dict[str, str],
) -> dict[str, Any]:
    env = merge_env(image.config.get("Env") or [], [(kv.key, kv.value) for kv in config.envs])
    caps = capabilities(config)
    # Open files: the daemon's own limit, which is what containerd's containers inherit.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    sc = config.linux.security_context
    res = config.linux.resources
    resources: dict[str, Any] = {}
    if res.cpu_shares or res.cpu_quota:
        resources["cpu"] = {
            k: v
            for k, v in (
                ("shares", res.cpu_shares),
                ("quota", res.cpu_quota),
                ("period", res.cpu_period or 100_000),
            )
            if v
        }
    if res.memory_limit_in_bytes:
        resources["memory"] = {"limit": res.memory_limit_in_bytes}
    if res.pids_limit:
        resources["pids"] = {"limit": res.pids_limit}
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
    ]
    for name, path in pod_files.items():
        mounts.append(
            {
                "destination": f"/etc/{name}",
                "type": "bind",
                "source": path,
                "options": ["rbind", "rprivate"],
            }
        )
    for m in config.mounts:
        options = ["rbind", "rprivate"] + (["ro"] if m.readonly else [])
        mounts.append(
            {
                "destination": m.container_path,
                "type": "bind",
                "source": m.host_path,
                "options": options,
            }
        )
    # The pod's namespaces are joined by path; "host" leaves the node's in place; ""
    # (a sandbox made before pods shared them) gives the container its own.
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if not host_pid:
        namespaces.append({"type": "pid"})
    for kind, path in (("ipc", ipc_ns), ("uts", uts_ns)):
        if path != "host":
            namespaces.append({"type": kind, **({"path": path} if path else {})})
    if netns:
        namespaces.append({"type": "network", "path": netns})
    who = users.resolve(
        rootfs,
        str(image.config.get("User") or ""),
        int(sc.run_as_user) if sc.has_run_as_user else None,
        int(sc.run_as_group) if sc.has_run_as_group else None,
        [int(g) for g in sc.supplemental_groups],
    )
    user = {"uid": who.uid, "gid": who.gid, "additionalGids": who.additional_gids}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": bool(config.tty),
            "user": user,
            "args": process_args(config, image),
            "env": env,
            "cwd": config.working_dir or image.config.get("WorkingDir") or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": not sc.privileged,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile[1], "soft": nofile[0]}],
            **({"oomScoreAdj": int(res.oom_score_adj)} if res.oom_score_adj else {}),
        },
        "root": {"path": str(rootfs), "readonly": bool(sc.readonly_rootfs)},
        **({"hostname": hostname} if uts_ns != "host" else {}),
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroup,
            "resources": resources,
            "maskedPaths": [] if sc.privileged else MASKED,
            "readonlyPaths": [] if sc.privileged else READONLY,
        },
    }
