"""The runtime daemon in a throwaway node network namespace (tests/runtime_daemon.py),
for the tests of the runtime service: `daemon` is the daemon itself, `node` the
same with helpers for the tests of Attach, PortForward, Status and stats. Each is
skiff-runc unless a test asks for another OCI runtime with
`@pytest.mark.parametrize("node", [...], indirect=True)`, and everything it made is
removed afterwards, also on failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proto import runtime_pb2 as pb
from tests.polling import eventually
from tests.runtime_daemon import RuntimeDaemon, daemon_in_netns


class Node(RuntimeDaemon):
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
        return eventually(
            lambda: (s := self.status(cid)).state == state and s,
            timeout,
            lambda: f"state {state} of {cid[:13]}: it stayed {self.status(cid).state}",
            interval=0.05,
        )


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    with daemon_in_netns(request, tmp_path, "10.244.7.0/24", Node) as n:
        yield n


@pytest.fixture
def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeDaemon]:
    with daemon_in_netns(request, tmp_path, "10.244.3.0/24", RuntimeDaemon) as d:
        yield d
