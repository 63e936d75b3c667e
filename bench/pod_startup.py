"""Pod startup latency through the whole node: created in the API -> Running and Ready
as seen through a watch, beside the runtime's own sandbox + container start (the floor).

    .venv/bin/python bench/pod_startup.py [--single 10] [--burst 30]

One node in a throwaway network namespace (etcd, apiserver, controller-manager,
scheduler, runtime daemon, kubelet: the integration tests' node), the busybox
image present. Pods name their node (`spec.nodeName`), so the figure is the
kubelet's path, not the scheduler's: the POST, the kubelet's watch, the sandbox
(network namespace, veth, address), the container (shim, OCI runtime), the status
write, and the watch event that reports it. First `--single` pods one after the
other, then `--burst` pods created at once. The floor is the same sandbox and
container started straight through the runtime's gRPC, in the same run.
Kubernetes' SLO: p99 <= 5 s (image present). Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proto import runtime_pb2 as pb  # noqa: E402
from tests.integration.kubelet.conftest import NODE, Node, one_node  # noqa: E402

NAMESPACE = "bench"


class ReadyWatch:
    """Watches the namespace's pods and notes when each is first Running and Ready."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.ready_at: dict[str, float] = {}
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = threading.Event()

    def _run(self) -> None:
        try:
            self._watch()
        except httpx.HTTPError:
            pass  # the apiserver went away at the end of the run

    def _watch(self) -> None:
        with self.node.api() as api:
            params = {"watch": "1", "timeoutSeconds": "3600"}
            with api.stream(
                "GET", f"/api/v1/namespaces/{NAMESPACE}/pods", params=params, timeout=None
            ) as r:
                self.started.set()
                for line in r.iter_lines():
                    if not line:
                        continue
                    pod = json.loads(line)["object"]
                    status = pod.get("status") or {}
                    ready = any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in status.get("conditions") or []
                    )
                    name = pod["metadata"]["name"]
                    if status.get("phase") == "Running" and ready and name not in self.ready_at:
                        with self.changed:
                            self.ready_at[name] = time.monotonic()
                            self.changed.notify_all()

    def start(self) -> None:
        self.thread.start()
        self.started.wait(30)

    def wait(self, names: list[str], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(n in self.ready_at for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.ready_at]
                    raise TimeoutError(f"not Ready within {timeout}s: {missing}")
                self.changed.wait(left)


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def create(node: Node, name: str) -> float:
    """POST the pod; the moment just before, which its latency counts from."""
    with node.api() as api:
        began = time.monotonic()
        r = api.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=pod(name))
        if r.status_code != 201:
            raise RuntimeError(r.text)
    return began


def runtime_floor(node: Node, runs: int, *, at_once: bool = False) -> list[float]:
    """RunPodSandbox + CreateContainer + StartContainer straight through the runtime,
    one after the other or all at once; the sandboxes are removed afterwards."""
    rt = node.runtime.client()
    if at_once:
        with ThreadPoolExecutor(max_workers=runs) as pool:
            started = list(pool.map(lambda n: _start_one(rt, f"floor-burst-{n}"), range(runs)))
    else:
        started = [_start_one(rt, f"floor-{n}") for n in range(runs)]
    for _, sid in started:
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    return [took for took, _ in started]


def _start_one(rt: Any, name: str) -> tuple[float, str]:
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="floor"),
        hostname=name,
    )
    began = time.monotonic()
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
    container = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="c"),
        image=pb.ImageSpec(image="docker.io/library/busybox:latest"),
        command=["sleep", "3600"],
    )
    cid = rt.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=container, sandbox_config=config)
    ).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    return time.monotonic() - began, sid


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<34} n={len(ms):<3} p50 {statistics.median(ms):7.0f} ms"
        f"   p99 {percentile(ms, 99):7.0f} ms   max {max(ms):7.0f} ms"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--single", type=int, default=10, help="pods created one after the other")
    p.add_argument("--burst", type=int, default=30, help="pods created at once")
    args = p.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="skiff-bench-pods-") as tmp,
        one_node(Path(tmp)) as node,
    ):
        with node.api() as api:
            api.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
        floor = runtime_floor(node, args.single)
        floor_burst = runtime_floor(node, args.burst, at_once=True)
        watch = ReadyWatch(node)
        watch.start()
        single = []
        for n in range(args.single):
            name = f"one-{n}"
            began = create(node, name)
            watch.wait([name])
            single.append(watch.ready_at[name] - began)
        names = [f"burst-{n}" for n in range(args.burst)]
        with ThreadPoolExecutor(max_workers=args.burst) as pool:
            created = dict(zip(names, pool.map(lambda n: create(node, n), names), strict=True))
        watch.wait(names)
        burst = [watch.ready_at[n] - created[n] for n in names]
        print(line("runtime floor (sandbox+container)", floor))
        print(line(f"runtime floor, {args.burst} at once", floor_burst))
        print(line("1 pod at a time: created->Ready", single))
        print(line(f"{args.burst} pods at once: created->Ready", burst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
