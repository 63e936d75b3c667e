"""End-to-end fixtures: a lab brought up as a user would, and proof that `down` cleaned up.

Every command goes through the `skiff` CLI (and kubectl through `skiff lab
kubectl`), so the tests see what a user sees. The fixture always brings the
lab down, also when a test failed, and `assert_nothing_left` checks the
machine: no namespace, mount, cgroup or process of the lab remains.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIFF = [sys.executable, "-m", "cli.main"]


class Lab:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def skiff(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        r = subprocess.run(
            [*SKIFF, "lab", "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if check and r.returncode:
            raise AssertionError(
                f"skiff lab {' '.join(args)} failed ({r.returncode}):\n"
                f"{r.stdout}\n{r.stderr}\n{self.logs()}"
            )
        return r.stdout + (r.stderr if not check else "")

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        return self.skiff("kubectl", *args, check=check, timeout=timeout)

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "lab.json").read_text())

    def logs(self, lines: int = 25) -> str:
        out = []
        for log in sorted(self.state_dir.glob("**/logs/*.log")):
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {log.relative_to(self.state_dir)}\n" + "\n".join(tail))
        return "\n".join(out)

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except (AssertionError, ValueError, KeyError) as e:
                last = e
            else:
                if last:
                    return last
            time.sleep(1)
        raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{self.logs()}")

    @staticmethod
    def assert_nothing_left(state: dict[str, Any]) -> None:
        assert_nothing_left(state)

    def netns(self, node: str = "") -> Path:
        """The network namespace of a node (default: the first, where the control plane runs)."""
        nodes = self.state["nodes"]
        name = next((n["netns"] for n in nodes if n["name"] == node), nodes[0]["netns"])
        return Path("/run/netns") / name

    def shell_env(self) -> dict[str, str]:
        """What `skiff lab shell` gives a user: KUBECONFIG and skiff's venv on PATH; and
        SKIFF_LAB_DIR, so `skiff lab ...` inside it finds this lab (a user's is the default)."""
        return {
            **os.environ,
            "KUBECONFIG": str(Path(self.state["control_plane_dir"]) / "admin.kubeconfig"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "SKIFF_LAB_DIR": str(self.state_dir),
        }

    def shell(
        self, script: str, *, env: Mapping[str, str] | None = None, timeout: float = 400
    ) -> subprocess.CompletedProcess[str]:
        """`script` run by bash (-euo pipefail) as in `skiff lab shell`: in the first node's
        network namespace, with the lab's kubeconfig."""
        return subprocess.run(
            ["nsenter", f"--net={self.netns()}", "--", "bash", "-euo", "pipefail", "-c", script],
            env=dict(env or self.shell_env()),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def ready_nodes(self) -> dict[str, bool]:
        out = {}
        for n in self.get("nodes")["items"]:
            conds = {c["type"]: c["status"] for c in n["status"].get("conditions", [])}
            out[n["metadata"]["name"]] = conds.get("Ready") == "True"
        return out


def footprint(state: dict[str, Any]) -> dict[str, list[str]]:
    """What of this lab exists on the machine: namespaces, mounts, cgroups, processes."""
    lab_id, state_dir = state["id"], state["state_dir"]
    netns = (
        [n for n in os.listdir("/run/netns") if lab_id in n] if os.path.isdir("/run/netns") else []
    )
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(state_dir)
    ]
    base = Path("/sys/fs/cgroup")
    tops = [base, *(h for h in base.iterdir() if h.is_dir())]
    cgroups = [str(t / f"skiff-lab-{lab_id}") for t in tops if (t / f"skiff-lab-{lab_id}").exists()]
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if state_dir in cmd or f"skiff-lab-{lab_id}" in cmd:
                    procs.append(f"{entry.name}: {cmd[:120]}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {
        "netns": netns,
        "mounts": mounts,
        "cgroups": cgroups,
        "processes": procs,
        "state dir": [state_dir] if Path(state_dir).exists() else [],
        "host links": [line for line in links.splitlines() if lab_id in line],
    }


def assert_nothing_left(state: dict[str, Any]) -> None:
    left = {k: v for k, v in footprint(state).items() if v}
    assert not left, f"skiff lab down left behind: {left}"


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(path: Path) -> Iterator[None]:
    """This thread (and what it starts: processes, sockets) in the network namespace at
    `path`, and back to where it was afterwards, also on failure."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's namespace")
    finally:
        os.close(target)
        os.close(home)


def has_module(path: str) -> bool:
    return (ROOT / path).exists()


needs_kubelet = pytest.mark.skipif(
    not has_module("kubelet/__main__.py"), reason="the kubelet is not in this build yet"
)
needs_proxy = pytest.mark.skipif(
    not (has_module("proxy/__main__.py") and has_module("proxy/dns.py")),
    reason="the service proxy and DNS are not in this build yet",
)


@pytest.fixture(scope="module")
def new_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A Lab (not up yet) with a state directory of its own; whatever the tests
    did, the lab is brought down afterwards and the machine checked."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, cgroups)")
    path = tmp_path_factory.mktemp("lab") / f"lab-{uuid.uuid4().hex[:6]}"
    yield Lab(path)
    if (path / "lab.json").exists():
        state = json.loads((path / "lab.json").read_text())
        Lab(path).skiff("down", check=False)
        assert_nothing_left(state)
