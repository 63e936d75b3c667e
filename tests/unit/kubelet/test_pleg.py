"""The relist: which pods' workers wake when the runtime's records change."""

from __future__ import annotations

from typing import Any

from kubelet.config import CONTAINER_NAME, POD_UID
from kubelet.observed import EXITED, RUNNING
from kubelet.pleg import Pleg, list_pods
from proto import runtime_pb2 as pb


class FakeRuntime:
    """Answers ListPodSandbox and ListContainers from lists a test changes."""

    def __init__(self) -> None:
        self.sandboxes: list[pb.PodSandboxStatus] = []
        self.containers: list[pb.ContainerStatus] = []

    async def ListPodSandbox(self, request: Any) -> pb.ListPodSandboxResponse:
        wanted = dict(request.label_selector)
        items = [s for s in self.sandboxes if wanted.items() <= dict(s.labels).items()]
        return pb.ListPodSandboxResponse(items=items)

    async def ListContainers(self, request: Any) -> pb.ListContainersResponse:
        wanted = dict(request.label_selector)
        items = [c for c in self.containers if wanted.items() <= dict(c.labels).items()]
        return pb.ListContainersResponse(containers=items)


def sandbox(uid: str) -> pb.PodSandboxStatus:
    return pb.PodSandboxStatus(
        id=f"sb-{uid}", state=pb.SANDBOX_READY, labels={POD_UID: uid}, ip="10.244.0.9"
    )


def container(uid: str, state: int = pb.CONTAINER_RUNNING) -> pb.ContainerStatus:
    return pb.ContainerStatus(
        id=f"c-{uid}",
        metadata=pb.ContainerMetadata(name="app", attempt=2),
        state=state,
        pod_sandbox_id=f"sb-{uid}",
        started_at=5_000_000_000,
        finished_at=7_000_000_000 if state == pb.CONTAINER_EXITED else 0,
        exit_code=1 if state == pb.CONTAINER_EXITED else 0,
        labels={POD_UID: uid, CONTAINER_NAME: "app"},
    )


async def test_relist_wakes_the_pods_that_changed() -> None:
    runtime = FakeRuntime()
    woken: list[str] = []
    pleg = Pleg(runtime, woken.append)
    runtime.sandboxes = [sandbox("a"), sandbox("b")]
    runtime.containers = [container("a"), container("b")]
    await pleg.relist()
    assert sorted(woken) == ["a", "b"]  # everything is new to a fresh kubelet
    woken.clear()
    await pleg.relist()
    assert woken == []  # nothing changed
    runtime.containers = [container("a", pb.CONTAINER_EXITED), container("b")]
    await pleg.relist()
    assert woken == ["a"]
    woken.clear()
    runtime.sandboxes, runtime.containers = [sandbox("b")], [container("b")]
    await pleg.relist()
    assert woken == ["a"]  # gone from the runtime: its worker looks once more


async def test_observation_of_one_pod() -> None:
    runtime = FakeRuntime()
    runtime.sandboxes = [sandbox("a"), sandbox("b")]
    runtime.containers = [container("a", pb.CONTAINER_EXITED), container("b")]
    observed = (await list_pods(runtime, "a"))["a"]
    (s,) = observed.sandboxes
    assert (s.id, s.ready, s.ip) == ("sb-a", True, "10.244.0.9")
    (c,) = observed.containers
    assert (c.name, c.attempt, c.state, c.exit_code) == ("app", 2, EXITED, 1)
    assert (c.started_at, c.finished_at) == (5.0, 7.0)
    assert (await list_pods(runtime, "b"))["b"].containers[0].state == RUNNING
