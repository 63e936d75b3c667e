"""`skiff down` and `skiff reset`: stop what `skiff up` started; then, for reset, undo it all.

`down` asks the supervisor to stop (SIGUSR1: stop the kubelet, remove every
pod through the runtime, then stop the rest in reverse start order) and waits
for it. The cluster's state stays: the next `up` brings the same cluster
back, and the kubelet starts the pods bound to the node again.

`reset` is `down` and then the machine as it was before `up`, as `kubeadm
reset` means it: the state directory, the pods' mounts, network devices (the
pod bridge and its veths), cgroups and iptables chains, and the sysctls
preflight changed. Only what skiff made is touched: paths from the saved
layout, the bridge skiff names, chains whose names start with `SKIFF-`, and
processes whose command line names this node's state or run directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .layout import DEFAULT_STATE_DIR, Layout
from .mounts import unmount_under
from .status import _cmdline, supervisor_pid

BRIDGE = "skiff0"  # the runtime's pod bridge (runtime/network/pod_network.py)
CHAIN_PREFIXES = ("SKIFF-",)  # iptables chains skiff owns
TABLES = ("nat", "filter", "mangle")


def down(layout: Layout, timeout: float = 120.0) -> bool:
    """Stop everything `up` started, pods included. False when nothing was up."""
    pid = supervisor_pid(layout)
    if pid is None:
        return False
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        if not _cmdline(pid):  # a zombie (we are not its parent): it has exited
            break
        time.sleep(0.2)
    if os.path.exists(f"/proc/{pid}") and _cmdline(pid):
        os.kill(pid, signal.SIGKILL)  # its components get SIGTERM through PDEATHSIG
    return True


# -- reset, one kind of thing at a time ---------------------------------------------------


def stray_processes(layout: Layout) -> list[str]:
    """Processes that name this node's state or run directory (shims, a component left
    by a killed supervisor): SIGKILL, by pid."""
    roots = (str(layout.state_dir), str(layout.run_dir))
    spared = {os.getpid(), os.getppid()}
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        args = _cmdline(int(entry.name))
        ours = args and Path(args[0]).name.startswith(("python", "etcd", "skiff"))
        if ours and any(r in a for a in args for r in roots):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(f"{entry.name} ({' '.join(args)[:60]})")
            except ProcessLookupError:
                pass
    return killed


def unmount(layout: Layout) -> list[str]:
    return unmount_under([layout.state_dir, layout.run_dir, layout.pod_log_dir])


def _links(*args: str) -> list[str]:
    r = subprocess.run(["ip", "-j", "link", "show", *args], capture_output=True, text=True,
                       check=False)  # fmt: skip
    return [link["ifname"] for link in json.loads(r.stdout or "[]")] if r.returncode == 0 else []


def network_devices() -> list[str]:
    """The pod bridge and the veths on it (their pod ends went with the pods' netns)."""
    if not _links("dev", BRIDGE):
        return []
    removed = []
    for name in [*_links("master", BRIDGE), BRIDGE]:
        if subprocess.run(["ip", "link", "del", name], capture_output=True).returncode == 0:
            removed.append(name)
    return removed


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)


def iptables_chains() -> list[str]:
    """Jumps to skiff's chains first (from any chain), then the chains themselves."""
    if not shutil.which("iptables"):
        return []
    removed = []
    for table in TABLES:
        rules = _iptables("-t", table, "-S").stdout.splitlines()
        ours = [r.split()[1] for r in rules if r.startswith("-N ") and
                r.split()[1].startswith(CHAIN_PREFIXES)]  # fmt: skip
        for rule in rules:
            words = shlex.split(rule)  # a rule's comment is quoted: "skiff service portals"
            if words[0] == "-A" and words[1] not in ours and "-j" in words and \
                    words[words.index("-j") + 1] in ours:  # fmt: skip
                _iptables("-t", table, "-D", *words[1:])
        for chain in ours:
            _iptables("-t", table, "-F", chain)
        for chain in ours:
            if _iptables("-t", table, "-X", chain).returncode == 0:
                removed.append(f"{table}/{chain}")
    return removed


def cgroup_dirs(cgroup_root: str) -> list[Path]:
    """The node's cgroup in every hierarchy (v2, the hybrid unified one, each v1 one)."""
    base = Path("/sys/fs/cgroup")
    rel = cgroup_root.strip("/")
    candidates = [base / rel] + [d / rel for d in base.iterdir() if d.is_dir()]
    return [c for c in candidates if c.is_dir() and c != base]


def cgroups(layout: Layout) -> list[str]:
    removed = []
    for top in cgroup_dirs(layout.cgroup_root):
        for d in sorted((p for p in [top, *top.rglob("*")] if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True):  # fmt: skip
            procs = d / "cgroup.procs"
            for _ in range(50):  # a process left in a pod cgroup: skiff made it
                pids = procs.read_text().split() if procs.exists() else []
                for pid in pids:
                    _kill(int(pid))
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        removed.append(str(top))
    return removed


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def sysctls(layout: Layout) -> list[str]:
    restored = []
    for name, value in layout.changed_sysctls.items():
        if not value:
            continue
        try:
            (Path("/proc/sys") / name.replace(".", "/")).write_text(value + "\n")
            restored.append(f"{name}={value}")
        except OSError:
            pass
    return restored


def directories(layout: Layout) -> list[str]:
    removed = []
    for d in (layout.run_dir, layout.pod_log_dir, layout.state_dir):
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


def reset(layout: Layout) -> list[tuple[str, list[str]]]:
    """Everything `up` made, removed in an order where each step can succeed."""
    down(layout)
    return [
        ("stopped processes", stray_processes(layout)),
        ("unmounted", unmount(layout)),
        ("removed network devices", network_devices()),
        ("removed iptables chains", iptables_chains()),
        ("removed cgroups", cgroups(layout)),
        ("restored sysctls", sysctls(layout)),
        ("removed directories", directories(layout)),
    ]


def main(argv: list[str], *, full_reset: bool) -> int:
    name = "reset" if full_reset else "down"
    p = argparse.ArgumentParser(prog=f"skiff {name}", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    a = p.parse_args(argv)
    layout = Layout.load(a.state_dir.resolve())
    if layout is None:
        print(f"skiff {name}: no cluster in {a.state_dir} (skiff up never ran there)")
        return 0 if full_reset else 1
    if os.geteuid() != 0:
        print(f"skiff {name}: needs root (run it with sudo)", file=sys.stderr)
        return 1
    if not full_reset:
        if down(layout):
            print(f"skiff: stopped the node's pods and components; the state stays in "
                  f"{layout.state_dir} (skiff up starts it again)")  # fmt: skip
        else:
            print("skiff: not up, nothing to stop")
        return 0
    for what, items in reset(layout):
        if items:
            print(f"skiff: {what}: {', '.join(items)}")
    print("skiff: reset done; this machine is as it was before skiff up")
    return 0
