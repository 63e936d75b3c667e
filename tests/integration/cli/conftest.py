"""A node made by `skiff up --foreground` inside a private network namespace (contract F).

The pytest main thread enters the namespace with setns(2) for the module's
life, so `skiff up` and everything it starts (apiserver and etcd, controllers,
scheduler, runtime, kubelet, the pods' shims) live there: loopback, the pod
bridge, veths and iptables chains are the namespace's own and nothing has a
route out. Paths (state, run dir, pod logs) are under a temporary directory
and the cgroup root is unique, so other tests on the machine are untouched.
The finalizer runs `skiff reset` and then removes by force whatever it left
(by PID, by path, by the unique cgroup root), also when a test failed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.config import ConfigError, load_config
from runtime.cgroups import remove_tree
from tests.conftest import ROOT
from tests.polling import eventually

CLONE_NEWNET = 0x40000000
NODE = "up-node"


def _setns_fd(fd: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


# What the CLI's tests take for "not yet": a component or its kubeconfig not up yet.
NOT_YET = (httpx.HTTPError, OSError, KeyError, ValueError, ConfigError)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """tests/polling.py's eventually(), with the CLI tests' "not yet" exceptions."""
    return eventually(check, timeout, what, interval=0.1, ignoring=NOT_YET)


@dataclass
class Node:
    base: Path
    netns: str
    cgroup_root: str
    supervisor: subprocess.Popen[bytes] | None = None

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    def flags(self) -> list[str]:
        return ["--state-dir", str(self.state)]

    def up_flags(self) -> list[str]:
        return [
            *self.flags(),
            "--node-name", NODE,
            "--node-ip", "127.0.0.1",
            "--run-dir", str(self.run_dir),
            "--cgroup-root", self.cgroup_root,
            "--pod-log-dir", str(self.base / "pods"),
        ]  # fmt: skip

    def skiff(self, *args: str, check: bool = True) -> str:
        r = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                           cwd=ROOT, timeout=240, check=False)  # fmt: skip
        if check:
            assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout + r.stderr

    def start_foreground(self) -> None:
        """`skiff up --foreground`, as the systemd unit runs it."""
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "up.out", "ab") as out:
            self.supervisor = subprocess.Popen(
                [sys.executable, "-m", "cli", "up", "--foreground", *self.up_flags()],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip

    def api(self) -> httpx.Client:
        config = load_config(str(self.state / "admin.kubeconfig"))
        return httpx.Client(base_url=config.server, verify=config.ssl_context(),
                            headers=config.headers(), timeout=10)  # fmt: skip

    def components(self) -> dict[str, Any]:
        return dict(json.loads((self.state / "components.json").read_text())["components"])

    def node_ready(self) -> bool:
        with self.api() as api:
            r = api.get(f"/api/v1/nodes/{NODE}")
        if r.status_code != 200:
            return False
        node = r.json()
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions") or []}
        return conditions.get("Ready") == "True"

    def processes(self) -> list[str]:
        """Every process that names this node's state or run directory (components, shims)."""
        roots = (str(self.state), str(self.run_dir))
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(r in a for a in args for r in roots):
                found.append(f"{entry.name}: {' '.join(args)[:120]}")
        return found

    def output(self) -> str:
        logs = [self.base / "up.out", *sorted((self.state / "logs").glob("*.log"))]
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in logs if p.exists())  # fmt: skip


def _force_cleanup(node: Node) -> None:
    """What `skiff reset` should have done, done by force: by PID and by path only."""
    if node.supervisor is not None and node.supervisor.poll() is None:
        node.supervisor.send_signal(signal.SIGUSR1)
        try:
            node.supervisor.wait(60)
        except subprocess.TimeoutExpired:
            node.supervisor.kill()
            node.supervisor.wait()
    for line in node.processes():
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    mounts = [m.split()[1] for m in Path("/proc/self/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(node.base))), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    remove_tree(node.cgroup_root)


@contextlib.contextmanager
def up_node(base: Path) -> Iterator[Node]:
    """A Ready node of `skiff up --foreground` in a namespace of its own under `base`; this
    thread is in that namespace until the node is reset and removed (also on failure)."""
    uid = uuid.uuid4().hex[:8]
    n = Node(base, f"skifftest-up-{uid}", f"/skiff-uptest-{uid}")
    subprocess.run(["ip", "netns", "add", n.netns], check=True)
    subprocess.run(["ip", "-n", n.netns, "link", "set", "lo", "up"], check=True)
    home = os.open(f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{n.netns}", os.O_RDONLY)
    try:
        _setns_fd(target)
        try:
            n.start_foreground()
            wait_for(lambda: n.supervisor.poll() is not None or  # type: ignore[union-attr]
                     n.node_ready(), "the node to be Ready")  # fmt: skip
            assert n.supervisor is not None and n.supervisor.poll() is None, n.output()
            yield n
        finally:
            try:
                n.skiff("reset", *n.flags(), check=False)
            finally:
                _force_cleanup(n)
                _setns_fd(home)
    finally:
        os.close(target)
        os.close(home)
        subprocess.run(["ip", "netns", "del", n.netns], check=False)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if os.geteuid() != 0 or not Path("/bin/busybox").exists():
        pytest.skip("needs root and busybox-static")
    with up_node(tmp_path_factory.mktemp("skiff-up")) as n:
        yield n
