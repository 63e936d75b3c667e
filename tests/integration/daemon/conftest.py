"""A runtime daemon in a throwaway node network namespace, for the tests of Attach,
PortForward, Status and stats: `node` starts one (skiff-runc unless a test asks
for another OCI runtime with `@pytest.mark.parametrize("node", [...], indirect=True)`)
and removes every pod, the namespace and the cgroups it made, also on failure."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc
from runtime.cgroups import remove_tree
from runtime.images.busybox import build_busybox
from runtime.images.store import ImageStore

ROOT = Path(__file__).resolve().parents[3]


class Node:
    def __init__(self, netns: str, base: Path, oci_runtime: str, pod_cidr: str) -> None:
        self.netns, self.base, self.oci_runtime, self.pod_cidr = netns, base, oci_runtime, pod_cidr
        self.cgroup_root = f"skiff-test-{uuid.uuid4().hex[:8]}"
        self.socket = base / "runtime.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None

    def start(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                # nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups
                "nsenter",
                f"--net=/run/netns/{self.netns}",
                sys.executable,
                "-m",
                "runtime.daemon",
                "--socket",
                str(self.socket),
                "--state-dir",
                str(self.base / "state"),
                "--run-dir",
                str(self.base / "run"),
                "--image-root",
                str(self.base / "images"),
                *(["--pod-cidr", self.pod_cidr] if self.pod_cidr else []),
                "--cgroup-root",
                f"/{self.cgroup_root}",
                "--oci-runtime",
                self.oci_runtime,
            ],
            cwd=ROOT,
            stdout=open(self.base / "daemon.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.proc.poll() is None, (self.base / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon never listened"
            time.sleep(0.05)
        # It answers (not only a socket file there); if it died, its log says why.
        try:
            self.api.Version(pb.VersionRequest(), timeout=30, wait_for_ready=True)
        except grpc.RpcError as e:
            log = (self.base / "daemon.log").read_text()
            raise AssertionError(f"the daemon does not answer ({e.code()}):\n{log}") from e

    def kill(self) -> None:
        """SIGKILL, as a crash: the containers' shims must carry on."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def api(self) -> pb_grpc.RuntimeServiceStub:
        """A client on a channel of the running daemon's (a new one after a restart)."""
        if self.channel is None:
            self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        return pb_grpc.RuntimeServiceStub(self.channel)

    def sandbox(self, name: str, **linux: Any) -> str:
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
            hostname=name,
            linux=pb.LinuxPodSandboxConfig(**linux),
        )
        return self.api.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id

    def run(self, sid: str, name: str, args: list[str], **config: Any) -> str:
        """Create and start a busybox container; its id once it runs."""
        api = self.api
        spec = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image="busybox"),
            command=args,
            **config,
        )
        cid = api.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=sid, config=spec)
        ).container_id
        api.StartContainer(pb.StartContainerRequest(container_id=cid))
        self.wait_state(cid, pb.CONTAINER_RUNNING)
        return cid

    def status(self, cid: str) -> Any:
        return self.api.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status

    def wait_state(self, cid: str, state: int, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            s = self.status(cid)
            if s.state == state:
                return s
            assert time.monotonic() < deadline, f"state stayed {s.state}"
            time.sleep(0.05)


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    if os.geteuid() != 0 or not Path("/bin/busybox").exists():
        pytest.skip("needs root and busybox-static")
    oci_runtime = getattr(request, "param", "skiff-runc")
    if oci_runtime != "skiff-runc" and not shutil.which(oci_runtime):
        pytest.skip(f"{oci_runtime} is not installed")
    netns = f"skifftest-rpc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    build_busybox(ImageStore(tmp_path / "images"))
    pod_cidr = "" if request.node.get_closest_marker("no_pod_cidr") else "10.244.7.0/24"
    n = Node(netns, tmp_path, oci_runtime, pod_cidr)
    try:
        n.start()
        yield n
    finally:
        try:
            if n.proc and n.proc.poll() is not None:
                n.start()  # a test killed it: clean up through a fresh one
            api = n.api
            for s in api.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items:
                api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
        finally:
            if n.channel is not None:
                n.channel.close()
            n.stop()
            subprocess.run(["ip", "netns", "del", netns], check=False)
            remove_tree(n.cgroup_root)
