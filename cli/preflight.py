"""Preflight: what the machine must offer before `skiff up`, each failure one line with its fix.

kubeadm's preflight is the model: gather facts about the machine
(`gather`), decide what is wrong from the facts alone (`decide`, pure and
table-tested), then fix what is safe to fix (`fix`: a sysctl, a kernel module)
and say so. Anything else stops `up` with the line that tells the user what to
do, before a component starts and fails in a log nobody reads.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FORWARD = "net.ipv4.ip_forward"
BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"


@dataclass(frozen=True)
class Facts:
    """What `decide` looks at; `gather()` reads it from this machine."""

    euid: int
    modules: frozenset[str]  # loaded or built in: overlay, br_netfilter
    sysctls: dict[str, str]  # name -> value ("" when the file does not exist)
    cgroup_mount: str  # the type mounted on /sys/fs/cgroup: cgroup2, tmpfs, ""
    cgroup_controllers: frozenset[str]
    iptables: str  # `iptables --version`, "" when missing
    busy_ports: dict[int, str] = field(default_factory=dict)  # port -> who holds it
    swap_bytes: int = 0


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    message: str
    fix: str = ""  # what the user does (or what `fix()` does when `fixable`)
    fixable: bool = False  # `fix()` can set it right itself
    warning: bool = False  # reported, does not stop `up`
    fixed: bool = False  # was wrong, `fix()` set it right

    def line(self) -> str:
        if self.ok:
            tag = "fixed" if self.fixed else "ok"
        else:
            tag = "warn" if self.warning else "fail"
        tail = f" ({self.fix})" if self.fix and not self.ok else ""
        return f"{'[' + tag + ']':<8}{self.check}: {self.message}{tail}"


def cgroup_layout(facts: Facts) -> str:
    if facts.cgroup_mount == "cgroup2":
        return "v2"
    if "unified" in facts.cgroup_controllers:
        return "hybrid"
    return "v1" if facts.cgroup_controllers else ""


def decide(facts: Facts, ports: tuple[int, ...]) -> list[Finding]:
    """Pure: every check's finding, in the order they are printed."""
    out: list[Finding] = []
    if facts.euid == 0:
        out.append(Finding("root", True, "running as root"))
    else:
        out.append(Finding("root", False, "skiff up needs root", "run it with sudo, or as root"))
    for module, why in (("overlay", "container root filesystems"), ("br_netfilter", "Services")):
        if module in facts.modules:
            out.append(Finding(f"module {module}", True, "loaded"))
        else:
            out.append(
                Finding(f"module {module}", False, f"not loaded (needed for {why})",
                        f"modprobe {module}", fixable=True)
            )  # fmt: skip
    if facts.sysctls.get(FORWARD) == "1":
        out.append(Finding(FORWARD, True, "1"))
    else:
        out.append(
            Finding(FORWARD, False, "0: pod traffic would not be routed",
                    f"sysctl -w {FORWARD}=1", fixable=True)
        )  # fmt: skip
    value = facts.sysctls.get(BRIDGE_NF, "")
    if value == "1":
        out.append(Finding(BRIDGE_NF, True, "1"))
    else:
        seen = "missing (br_netfilter not loaded)" if value == "" else value
        out.append(
            Finding(BRIDGE_NF, False, f"{seen}: Service rules would miss traffic between pods "
                    "on this node", f"modprobe br_netfilter; sysctl -w {BRIDGE_NF}=1", fixable=True)
        )  # fmt: skip
    layout = cgroup_layout(facts)
    missing = {"cpu", "memory", "pids"} - facts.cgroup_controllers
    if not layout:
        out.append(Finding("cgroups", False, "no cgroup file system on /sys/fs/cgroup",
                           "mount cgroup2 on /sys/fs/cgroup (systemd does at boot)"))  # fmt: skip
    elif missing:
        out.append(
            Finding("cgroups", False, f"{layout}, without the {', '.join(sorted(missing))} "
                    "controller", "enable it on the kernel command line (cgroup_enable=...)")
        )  # fmt: skip
    else:
        out.append(Finding("cgroups", True, f"{layout} with cpu, memory and pids"))
    match = re.search(r"\((nf_tables|legacy)\)", facts.iptables)
    if not facts.iptables:
        out.append(Finding("iptables", False, "not installed", "apt-get install iptables"))
    else:
        backend = match.group(1) if match else "legacy"
        out.append(Finding("iptables", True, f"{facts.iptables.split()[1]} ({backend})"))
    for port in ports:
        holder = facts.busy_ports.get(port)
        if holder:
            out.append(
                Finding(f"port {port}", False, f"in use by {holder}",
                        "stop it (another Kubernetes?) before skiff up")
            )  # fmt: skip
        else:
            out.append(Finding(f"port {port}", True, "free"))
    if facts.swap_bytes:
        out.append(
            Finding("swap", False, f"{facts.swap_bytes // 2**20} MiB of swap is on: memory "
                    "limits count RAM only", "swapoff -a, and remove it from /etc/fstab",
                    warning=True)
        )  # fmt: skip
    else:
        out.append(Finding("swap", True, "off"))
    return out


def failed(findings: list[Finding]) -> list[Finding]:
    """What stops `up`: failures that are neither warnings nor fixed."""
    return [f for f in findings if not f.ok and not f.warning]


# -- the shell: read the machine, fix what is safe to fix --------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return ""


def _modules() -> frozenset[str]:
    found = set()
    with contextlib.suppress(OSError):
        if re.search(r"\boverlay$", Path("/proc/filesystems").read_text(), re.M):
            found.add("overlay")
    if Path("/sys/module/br_netfilter").exists() or Path("/proc/sys/net/bridge").exists():
        found.add("br_netfilter")
    return frozenset(found)


def _cgroups() -> tuple[str, frozenset[str]]:
    mount, controllers = "", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            _, where, kind, options, *_ = line.split()
            if where == "/sys/fs/cgroup":
                mount = kind
            elif where == "/sys/fs/cgroup/unified":
                controllers.add("unified")
            elif kind == "cgroup" and where.startswith("/sys/fs/cgroup/"):
                controllers |= set(options.split(",")) & {"cpu", "memory", "pids", "cpuset"}
    if mount == "cgroup2":
        with contextlib.suppress(OSError):
            controllers |= set(Path("/sys/fs/cgroup/cgroup.controllers").read_text().split())
    return mount, frozenset(controllers)


def _iptables() -> str:
    if not shutil.which("iptables"):
        return ""
    r = subprocess.run(["iptables", "--version"], capture_output=True, text=True, check=False)
    return r.stdout.strip()


def port_holder(port: int) -> str:
    """Who listens on TCP `port` (any address), or "" when it is free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return ""
        except OSError:
            pass
    r = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True,
                       check=False)  # fmt: skip
    users = re.search(r'users:\(\("([^"]+)",pid=(\d+)', r.stdout)
    return f"{users.group(1)} (pid {users.group(2)})" if users else "another process"


def _swap() -> int:
    total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/swaps").read_text().splitlines()[1:]:
            total += int(line.split()[2]) * 1024
    return total


def gather(ports: tuple[int, ...]) -> Facts:
    mount, controllers = _cgroups()
    return Facts(
        euid=os.geteuid(),
        modules=_modules(),
        sysctls={name: read_sysctl(name) for name in (FORWARD, BRIDGE_NF)},
        cgroup_mount=mount,
        cgroup_controllers=controllers,
        iptables=_iptables(),
        busy_ports={p: h for p in ports if (h := port_holder(p))},
        swap_bytes=_swap(),
    )


def fix(findings: list[Finding]) -> tuple[list[Finding], dict[str, str]]:
    """Fix the fixable failures; (findings after the fixes, sysctl -> the value before).

    The old sysctl values are kept so that `skiff reset` can put them back.
    """
    before: dict[str, str] = {}
    out = []
    for f in findings:
        if f.ok or not f.fixable:
            out.append(f)
            continue
        if f.check.startswith("module "):
            module = f.check.split()[1]
            r = subprocess.run(["modprobe", module], capture_output=True, text=True, check=False)
            done = r.returncode == 0
            what = f"loaded it (modprobe {module})" if done else r.stderr.strip()
        else:
            name = f.check
            if name == BRIDGE_NF:
                subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
            old = read_sysctl(name)
            try:
                _sysctl_path(name).write_text("1\n")
                done = True
                before[name] = old
                what = f"set it to 1 (was {old or 'missing'})"
            except OSError as e:
                done, what = False, f"could not set it: {e.strerror}"
        if done:
            out.append(Finding(f.check, True, what, fixed=True))
        else:
            out.append(Finding(f.check, False, f"{f.message}; {what}", f.fix))
    return out, before
