"""The runtime daemon of a test's own (`python -m runtime.daemon`), started and removed
the one way: the daemon tests (tests/integration/daemon/) and the node of the kubelet
tests (tests/integration/kubelet/conftest.py) use it.

Each has its own socket, state and run directories under the test's directory and
a unique cgroup root, so tests on the same machine never meet. `cleanup` removes
whatever the daemon made, through the daemon first (restarted if a test killed it)
and then by force: shims by PID, the cgroup tree, mounts under the test's
directory, the node namespace, the cgroup root. It runs also when the test failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc
from runtime.cgroups import remove_tree
from runtime.images.busybox import build_busybox
from runtime.images.store import ImageStore

ROOT = Path(__file__).resolve().parents[1]


class RuntimeDaemon:
    def __init__(
        self,
        base: Path,
        *,
        netns: str = "",
        oci_runtime: str = "skiff-runc",
        pod_cidr: str = "",
        log: str = "daemon.log",
    ) -> None:
        """`netns`: the node namespace it runs in ("" for the one of the starting thread);
        `pod_cidr` "" starts it without --pod-cidr."""
        self.base, self.netns, self.oci_runtime, self.pod_cidr = base, netns, oci_runtime, pod_cidr
        self.log = base / log
        self.cgroup_root = f"skiff-test-{uuid.uuid4().hex[:8]}"
        self.socket = base / "runtime.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None

    def argv(self) -> list[str]:
        # nsenter, not `ip netns exec`: that remounts /sys for the namespace, and the
        # daemon would no longer see /sys/fs/cgroup.
        enter = ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []
        return [
            *enter,
            sys.executable, "-m", "runtime.daemon",
            "--socket", str(self.socket),
            "--state-dir", str(self.base / "state"),
            "--run-dir", str(self.base / "run"),
            "--image-root", str(self.base / "images"),
            *(["--pod-cidr", self.pod_cidr] if self.pod_cidr else []),
            "--cgroup-root", f"/{self.cgroup_root}",
            "--oci-runtime", self.oci_runtime,
        ]  # fmt: skip

    def start(self) -> None:
        """Start it and return once it answers (a socket left by a killed daemon must not
        pass for the new one's); if it died, its log says why."""
        self._close()
        self.socket.unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the daemon never listened:\n{self.log.read_text()}")
            time.sleep(0.05)
        try:
            self.api.Version(pb.VersionRequest(), timeout=30, wait_for_ready=True)
        except grpc.RpcError as e:
            raise AssertionError(
                f"the daemon does not answer ({e.code()}):\n{self.log.read_text()}"
            ) from e

    def kill(self) -> None:
        """SIGKILL, as a crash: the containers' shims must carry on."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        self._close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def api(self) -> pb_grpc.RuntimeServiceStub:
        """A client on a channel of the running daemon's (a new one after a restart)."""
        if self.channel is None:
            self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        return pb_grpc.RuntimeServiceStub(self.channel)

    def client(self) -> pb_grpc.RuntimeServiceStub:
        return self.api

    def _close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def remove_pods(self) -> None:
        api = self.api
        for s in api.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items:
            api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60)

    def cleanup(self) -> None:
        """Remove everything it made: through the daemon, then by force."""
        try:
            if self.proc is not None and not self.running() and (self.base / "state").exists():
                self.start()  # a test killed it: clean up through a fresh one
            if self.running():
                self.remove_pods()
        except (grpc.RpcError, AssertionError, OSError) as e:
            print(f"cleanup through the daemon failed ({e}); removing by force", file=sys.stderr)
        finally:
            self.stop()
            for pid_file in (self.base / "state" / "containers").glob("*/shim.pid"):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
            kill_cgroup_tree(self.cgroup_root)
            unmount_below(self.base)
            if self.netns and Path(f"/run/netns/{self.netns}").exists():
                subprocess.run(["ip", "netns", "del", self.netns], check=False)
            remove_tree(self.cgroup_root)  # this test's cgroup root


D = TypeVar("D", bound=RuntimeDaemon)


@contextlib.contextmanager
def daemon_in_netns(
    request: pytest.FixtureRequest, base: Path, pod_cidr: str, kind: type[D]
) -> Iterator[D]:
    """A daemon of `kind` in a throwaway node namespace, for a fixture: skiff-runc unless
    the test asks for another OCI runtime (`@pytest.mark.parametrize(FIXTURE, [...],
    indirect=True)`); without --pod-cidr for a test marked `no_pod_cidr`."""
    if os.geteuid() != 0 or not Path("/bin/busybox").exists():
        pytest.skip("needs root and busybox-static")
    oci_runtime = getattr(request, "param", "skiff-runc")
    if oci_runtime != "skiff-runc" and not shutil.which(oci_runtime):
        pytest.skip(f"{oci_runtime} is not installed")
    if oci_runtime == "crun":  # crun 1.8 needs every controller off the v2 mount
        request.getfixturevalue("v1_cgroups_for_crun")
    cidr = "" if request.node.get_closest_marker("no_pod_cidr") else pod_cidr
    netns = f"skifftest-node-{uuid.uuid4().hex[:8]}"
    d = kind(base, netns=netns, oci_runtime=oci_runtime, pod_cidr=cidr)
    try:
        subprocess.run(["ip", "netns", "add", netns], check=True)
        build_busybox(ImageStore(base / "images"))
        d.start()
        yield d
    finally:
        d.cleanup()


def kill_cgroup_tree(root: str) -> None:
    """SIGKILL every process in the cgroup `root` (all hierarchies) and wait for them."""
    deadline = time.monotonic() + 10
    while True:
        pids = {
            int(pid)
            for pattern in (f"{root}/**/cgroup.procs", f"*/{root}/**/cgroup.procs")  # v2, v1
            for procs in Path("/sys/fs/cgroup").glob(pattern)
            for pid in procs.read_text().split()
        }
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def unmount_below(base: Path) -> None:
    """Lazily unmount every mount at or below `base`, deepest first."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    prefix = str(base).rstrip("/") + "/"
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
