"""The runtime daemon over gRPC, as the kubelet will drive it: sandboxes with a pod
network inside a throwaway node namespace, containers held by shims, and a daemon
that can be killed without its containers noticing."""

from __future__ import annotations

import os
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
from runtime.images.busybox import build_busybox
from runtime.images.store import ImageStore

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists(), reason="needs root and busybox-static"
)


class Daemon:
    def __init__(self, node: str, base: Path) -> None:
        self.node, self.base = node, base
        self.socket = base / "runtime.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.node,
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
                "--pod-cidr",
                "10.244.3.0/24",
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

    def kill(self) -> None:
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

    def client(self) -> pb_grpc.RuntimeServiceStub:
        return pb_grpc.RuntimeServiceStub(grpc.insecure_channel(f"unix://{self.socket}"))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    node = f"skifftest-node-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", node], check=True)
    build_busybox(ImageStore(tmp_path / "images"))
    d = Daemon(node, tmp_path)
    try:
        d.start()
        yield d
    finally:
        try:
            if d.proc and d.proc.poll() is not None:
                d.start()  # a test killed it: clean up through a fresh one
            api = d.client()
            for s in api.ListPodSandbox(pb.ListPodSandboxRequest()).items:
                api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
        finally:
            d.stop()
            subprocess.run(["ip", "netns", "del", node], check=False)
            for controller in os.listdir("/sys/fs/cgroup"):
                skiff = Path(f"/sys/fs/cgroup/{controller}/skiff")
                if skiff.is_dir():
                    for pod in skiff.glob("pod*"):
                        for child in [c for c in pod.iterdir() if c.is_dir()]:
                            child.rmdir()
                        pod.rmdir()


def sandbox(api: Any, name: str) -> str:
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
        hostname=name,
        dns_config=pb.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local"]),
    )
    return api.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id


def container(api: Any, sid: str, name: str, args: list[str]) -> str:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image="busybox"), command=args
    )
    return api.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=config)
    ).container_id


def status(api: Any, cid: str) -> Any:
    return api.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status


def wait_state(api: Any, cid: str, state: int, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        s = status(api, cid)
        if s.state == state:
            return s
        assert time.monotonic() < deadline, f"state stayed {s.state}"
        time.sleep(0.1)


def test_sandbox_container_lifecycle_and_exec(daemon: Daemon) -> None:
    api = daemon.client()
    sid = sandbox(api, "web")
    sb = api.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert sb.state == pb.SANDBOX_READY and sb.ip.startswith("10.244.3.")
    cid = container(api, sid, "main", ["sh", "-c", "echo started; sleep 30"])
    assert status(api, cid).state == pb.CONTAINER_CREATED
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    running = wait_state(api, cid, pb.CONTAINER_RUNNING)
    assert running.pid > 0
    out = api.ExecSync(
        pb.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "hostname; cat /etc/resolv.conf; ip -4 addr"]
        )
    )
    text = out.stdout.decode()
    assert out.exit_code == 0 and text.splitlines()[0] == "web"
    assert "nameserver 10.96.0.10" in text and sb.ip in text
    # A process that ignores SIGTERM is killed after the grace period.
    stubborn = container(api, sid, "stubborn", ["sh", "-c", "trap '' TERM; sleep 100"])
    api.StartContainer(pb.StartContainerRequest(container_id=stubborn))
    wait_state(api, stubborn, pb.CONTAINER_RUNNING)
    api.StopContainer(pb.StopContainerRequest(container_id=stubborn, timeout=1))
    stopped = wait_state(api, stubborn, pb.CONTAINER_EXITED)
    assert stopped.exit_code == 137 and stopped.reason == "Error"
    log = Path(status(api, cid).log_path).read_text()
    assert " stdout F started" in log
    with pytest.raises(grpc.RpcError) as e:
        status(api, "no-such-container")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_containers_survive_a_killed_daemon(daemon: Daemon) -> None:
    api = daemon.client()
    sid = sandbox(api, "survivor")
    long = container(api, sid, "long", ["sleep", "60"])
    short = container(api, sid, "short", ["sh", "-c", "sleep 2; exit 4"])
    for cid in (long, short):
        api.StartContainer(pb.StartContainerRequest(container_id=cid))
    pid = wait_state(api, long, pb.CONTAINER_RUNNING).pid
    daemon.kill()
    time.sleep(3)  # `short` exits while no daemon is running
    daemon.socket.unlink(missing_ok=True)
    daemon.start()
    api = daemon.client()
    again = status(api, long)
    assert again.state == pb.CONTAINER_RUNNING and again.pid == pid
    finished = wait_state(api, short, pb.CONTAINER_EXITED)
    assert finished.exit_code == 4
    listed = {c.id for c in api.ListContainers(pb.ListContainersRequest()).containers}
    assert {long, short} <= listed
