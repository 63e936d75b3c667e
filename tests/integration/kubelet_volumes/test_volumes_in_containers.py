"""Volumes as containers see them: VolumeManager's directories bind-mounted by the real
runtime daemon (in a throwaway node namespace) into busybox containers.

What a user checks inside the pod: a configMap update appears in place, a Secret with
defaultMode 0400 gives 0400 files, an emptyDir is shared by two containers, API-data
volumes are read-only, a subPath shows one file.
"""

from __future__ import annotations

import base64
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

from kubelet.volumes import VolumeManager, mounts_under
from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc
from runtime.cgroups import remove_tree
from runtime.images.busybox import build_busybox
from runtime.images.store import ImageStore
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists(), reason="needs root and busybox-static"
)


class Node:
    """A runtime daemon in its own network namespace, and the volume manager beside it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.netns = f"skifftest-vol-{uuid.uuid4().hex[:8]}"
        self.cgroup_root = f"skiff-test-{uuid.uuid4().hex[:8]}"
        self.socket = base / "runtime.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.volumes = VolumeManager(
            base / "kubelet",
            get_configmap=lambda ns, n: self.configmaps.get((ns, n)),
            get_secret=lambda ns, n: self.secrets.get((ns, n)),
        )

    def start(self) -> None:
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        build_busybox(ImageStore(self.base / "images"))
        self.proc = subprocess.Popen(
            # nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups
            ["nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-m", "runtime.daemon",
             "--socket", str(self.socket), "--state-dir", str(self.base / "state"),
             "--run-dir", str(self.base / "run"), "--image-root", str(self.base / "images"),
             "--pod-cidr", "10.244.7.0/24", "--cgroup-root", f"/{self.cgroup_root}"],
            cwd=ROOT,
            stdout=open(self.base / "daemon.log", "ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.proc.poll() is None, (self.base / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon never listened"
            time.sleep(0.05)
        self.api = pb_grpc.RuntimeServiceStub(grpc.insecure_channel(f"unix://{self.socket}"))

    def stop(self) -> None:
        try:
            if self.proc and self.proc.poll() is None:
                for s in self.api.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items:
                    self.api.RemovePodSandbox(
                        pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60
                    )
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for uid in self.volumes.pod_uids():
                self.volumes.unmount_all(uid)
            for point in mounts_under(self.base):
                subprocess.run(["umount", "-l", str(point)], check=False)
            subprocess.run(["ip", "netns", "del", self.netns], check=False)
            remove_tree(self.cgroup_root)

    def run_pod(self, pod: dict[str, Any]) -> dict[str, str]:
        """Volumes set up, a sandbox, and each container started with its mounts: name -> id."""
        paths = self.volumes.mount_all(pod)
        meta = pod["metadata"]
        sandbox = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=meta["name"], uid=meta["uid"], namespace="ns"),
            hostname=meta["name"],
        )
        sid = self.api.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox)).pod_sandbox_id
        ids = {}
        for c in pod["spec"]["containers"]:
            mounts = [
                pb.Mount(container_path=cpath, host_path=hpath, readonly=ro)
                for cpath, hpath, ro in self.volumes.container_mounts(pod, c, paths)
            ]
            config = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=c["name"]),
                image=pb.ImageSpec(image="busybox"),
                command=c["command"],
                mounts=mounts,
            )
            cid = self.api.CreateContainer(
                pb.CreateContainerRequest(pod_sandbox_id=sid, config=config)
            ).container_id
            self.api.StartContainer(pb.StartContainerRequest(container_id=cid))
            ids[c["name"]] = cid
        return ids

    def sh(self, cid: str, script: str) -> tuple[int, str]:
        out = self.api.ExecSync(
            pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=10)
        )
        return out.exit_code, (out.stdout + out.stderr).decode()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        n.start()
        yield n
    finally:
        n.stop()


def test_pod_sees_its_volumes_and_configmap_updates_in_place(node: Node) -> None:
    node.configmaps["ns", "cfg"] = {"data": {"app.conf": "v1", "nginx.conf": "server {}"}}
    node.secrets["ns", "creds"] = {"data": {"password": base64.b64encode(b"s3cret").decode()}}
    sleep = ["sh", "-c", "sleep 300"]
    pod = {
        "metadata": {"name": "web", "namespace": "ns", "uid": str(uuid.uuid4())},
        "spec": {
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {"name": "shared", "emptyDir": {}},
            ],
            "containers": [
                {
                    "name": "writer",
                    "command": sleep,
                    "volumeMounts": [
                        {"name": "cfg", "mountPath": "/etc/cfg"},
                        {"name": "creds", "mountPath": "/etc/creds"},
                        {"name": "shared", "mountPath": "/shared"},
                        {"name": "cfg", "mountPath": "/etc/nginx.conf", "subPath": "nginx.conf"},
                    ],
                },
                {
                    "name": "reader",
                    "command": sleep,
                    "volumeMounts": [{"name": "shared", "mountPath": "/data", "readOnly": True}],
                },
            ],
        },
    }
    ids = node.run_pod(pod)
    writer, reader = ids["writer"], ids["reader"]
    eventually(lambda: node.sh(writer, "true")[0] == 0, 20, "the writer to run", interval=0.1)
    eventually(lambda: node.sh(reader, "true")[0] == 0, 20, "the reader to run", interval=0.1)

    assert node.sh(writer, "cat /etc/cfg/app.conf") == (0, "v1")
    assert node.sh(writer, "cat /etc/nginx.conf") == (0, "server {}")
    assert node.sh(writer, "stat -L -c %a /etc/cfg/app.conf") == (0, "644\n")
    assert node.sh(writer, "cat /etc/creds/password") == (0, "s3cret")
    assert node.sh(writer, "stat -L -c '%a %u %g' /etc/creds/password") == (0, "400 0 0\n")
    code, _ = node.sh(writer, "echo x > /etc/cfg/new")
    assert code != 0  # API data is read-only inside the container

    assert node.sh(writer, "echo hello > /shared/note")[0] == 0
    assert node.sh(reader, "cat /data/note") == (0, "hello\n")
    assert node.sh(reader, "echo x > /data/other")[0] != 0  # readOnly: true

    node.configmaps["ns", "cfg"] = {"data": {"app.conf": "v2", "nginx.conf": "server {}"}}
    node.volumes.mount_all(pod)  # what the kubelet's periodic refresh does
    assert node.sh(writer, "cat /etc/cfg/app.conf") == (0, "v2")  # same container, new content
    assert node.sh(writer, "ls /etc/cfg")[1].split() == ["app.conf", "nginx.conf"]
