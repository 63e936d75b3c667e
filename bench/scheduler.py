"""Scheduling throughput: pods created → bound, beside the apiserver's raw binding rate.

    .venv/bin/python bench/scheduler.py [--pods 1000] [--nodes 100 1000]

For each node count: a fresh apiserver and scheduler, N Node objects (as kwok
has them: no kubelet), then the floor — this script binding pods itself
through `pods/binding`, 32 at a time — and then the scheduler placing the
same number of new pods, timed from the first create to the last bind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent


async def batched(calls: list[Any], size: int = 32) -> None:
    for i in range(0, len(calls), size):
        await asyncio.gather(*calls[i : i + size])


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


async def bound_count(api: httpx.AsyncClient, ns: str) -> int:
    items = (
        await api.get(f"/api/v1/namespaces/{ns}/pods", params={"fieldSelector": "spec.nodeName!="})
    ).json()["items"]
    return len(items)


async def measure(nodes: int, pods: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start_apiserver()
        try:
            async with cluster.client() as api:

                async def add_node(i: int) -> None:
                    made = (
                        await api.post(
                            "/api/v1/nodes",
                            json={
                                "metadata": {
                                    "name": f"n{i:04d}",
                                    "labels": {"kubernetes.io/hostname": f"n{i:04d}"},
                                }
                            },
                        )
                    ).json()
                    made["status"] = {
                        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"}
                    }
                    await api.put(f"/api/v1/nodes/n{i:04d}/status", json=made)

                await batched([add_node(i) for i in range(nodes)])
                for ns in ("raw", "sched"):
                    await api.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
                # The floor: create pods with schedulerName none, bind them ourselves.
                raw = [pod(f"r{i}") for i in range(pods)]
                for p in raw:
                    p["spec"]["schedulerName"] = "nobody"
                await batched([api.post("/api/v1/namespaces/raw/pods", json=p) for p in raw])
                t0 = time.perf_counter()
                await batched(
                    [
                        api.post(
                            f"/api/v1/namespaces/raw/pods/r{i}/binding",
                            json={
                                "apiVersion": "v1",
                                "kind": "Binding",
                                "metadata": {"name": f"r{i}"},
                                "target": {"kind": "Node", "name": f"n{i % nodes:04d}"},
                            },
                        )
                        for i in range(pods)
                    ]
                )
                floor = pods / (time.perf_counter() - t0)

                cluster.start_component("scheduler", "--leader-elect", "false")
                await asyncio.sleep(3)  # let it sync its caches
                t0 = time.perf_counter()
                await batched(
                    [
                        api.post("/api/v1/namespaces/sched/pods", json=pod(f"s{i}"))
                        for i in range(pods)
                    ]
                )
                while True:  # poll: the figure is when the last pod was bound
                    if await bound_count(api, "sched") >= pods:
                        break
                    await asyncio.sleep(0.5)
                rate = pods / (time.perf_counter() - t0)
                return floor, rate
        finally:
            cluster.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cpus; {args.pods} pods\n")
    for nodes in args.nodes:
        floor, rate = await measure(nodes, args.pods)
        print(
            f"  {nodes:5d} nodes: raw binding {floor:7.0f} pods/s   "
            f"scheduler created->bound {rate:7.0f} pods/s"
        )


if __name__ == "__main__":
    asyncio.run(main())
