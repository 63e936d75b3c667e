"""The write path after a create: patches, bindings and deletes, with what each one costs.

    .venv/bin/python bench/updates.py [--ops 600]      # about 40 s on an idle 2-core machine

A fresh apiserver (its default workers, its embedded etcd), a `default`
ServiceAccount in each namespace (as the controller-manager makes). Per row: the rate from
httpx clients on the same machine, and what each operation cost, which the load of
the rest of the machine does not change much: the apiserver's CPU (parent and
workers), etcd's CPU, and the etcd requests the apiserver made (from its own
`etcd_request_duration_seconds` counts, summed over workers). The anchor is the
row's etcd requests: a write needs one (the CAS); each further Range is a read the
watch cache could have answered.

- patch: a merge patch of a new value, one of 256 ConfigMaps per request, 8 clients;
- binding: `pods/binding` of pods created beforehand, 12 in flight (the scheduler's);
- create then bind: each pod bound as soon as its create returns (the scheduler's
  case: the worker taking the binding may not have seen the create yet);
- delete: the bound pods of the binding row, deleted gracefully (the
  deletionTimestamp written: an update), 8 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from cluster import Cluster

CLIENTS = 8
BINDS_IN_FLIGHT = 12  # scheduler.scheduler.MAX_INFLIGHT_BINDS
OBJECTS = 256
METRIC = re.compile(
    r'^etcd_request_duration_seconds_count\{operation="(\w+)",type="([^"]*)"\} ([0-9.e+]+)$'
)


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except FileNotFoundError:
            pass
    return kids


class Meter:
    """CPU of the apiserver (parent and workers) and of etcd, and the apiserver's
    etcd request counts, between two points."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.etcd = int((cluster.state / "etcd.pid").read_text())

    def cpu(self) -> tuple[float, float]:
        parent = self.cluster.procs[0].pid
        server = proc_cpu(parent) + sum(proc_cpu(c) for c in children(parent) if c != self.etcd)
        return server, proc_cpu(self.etcd)

    async def requests(self, api: httpx.AsyncClient) -> dict[str, float]:
        counts: dict[str, float] = {}
        for line in (await api.get("/metrics")).text.splitlines():
            m = METRIC.match(line)
            if m:
                counts[m[1]] = counts.get(m[1], 0.0) + float(m[3])
        return counts


async def run(clients: int, total: int, op: Callable[[int], Awaitable[None]]) -> float:
    """`total` calls of op over `clients` concurrent workers: ops/s."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return total / (time.perf_counter() - start)


def pod(name: str) -> dict[str, Any]:
    spec = {"containers": [{"name": "c", "image": "x"}], "schedulerName": "nobody"}
    return {"metadata": {"name": name}, "spec": spec}


def binding(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"kind": "Node", "name": "n1"},
    }


async def measure(ops: int) -> None:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start_apiserver()
        try:
            meter = Meter(cluster)
            async with cluster.client(32) as api:
                for ns in ("cm", "bind", "fresh"):
                    await api.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
                    # As the controller-manager makes it in every namespace.
                    await api.post(
                        f"/api/v1/namespaces/{ns}/serviceaccounts",
                        json={"metadata": {"name": "default"}},
                    )

                async def ok(r: Awaitable[httpx.Response]) -> None:
                    got = await r
                    assert got.is_success, got.text

                async def row(label: str, clients: int, total: int, op: Any) -> None:
                    await asyncio.sleep(1)  # the caches have seen the setup's writes
                    before, counts = meter.cpu(), await meter.requests(api)
                    rate = await run(clients, total, op)
                    after, now = meter.cpu(), await meter.requests(api)
                    server = (after[0] - before[0]) * 1000 / total
                    etcd = (after[1] - before[1]) * 1000 / total
                    ranges = (now.get("Range", 0) - counts.get("Range", 0)) / total
                    txns = (now.get("Txn", 0) - counts.get("Txn", 0)) / total
                    print(
                        f"| {label} | {clients} | {rate:,.0f}/s | {server:.2f} ms | {etcd:.2f} ms "
                        f"| {txns:.2f} | {ranges:.2f} |",
                        flush=True,
                    )

                cms = "/api/v1/namespaces/cm/configmaps"
                await run(
                    16,
                    OBJECTS,
                    lambda i: ok(api.post(cms, json={"metadata": {"name": f"c{i}"}, "data": {}})),
                )
                await run(
                    16,
                    ops,
                    lambda i: ok(api.post("/api/v1/namespaces/bind/pods", json=pod(f"p{i}"))),
                )
                merge = {"Content-Type": "application/merge-patch+json"}

                print(
                    "| operation | clients | rate | apiserver CPU/op | etcd CPU/op "
                    "| etcd Txn/op | etcd Range/op |"
                )
                print("|---|---|---|---|---|---|---|")
                await row(
                    "merge patch",
                    CLIENTS,
                    ops,
                    lambda i: ok(
                        api.patch(
                            f"{cms}/c{i % OBJECTS}", json={"data": {"n": str(i)}}, headers=merge
                        )
                    ),
                )
                pods = "/api/v1/namespaces/bind/pods"
                await row(
                    "binding (pod created before)",
                    BINDS_IN_FLIGHT,
                    ops,
                    lambda i: ok(api.post(f"{pods}/p{i}/binding", json=binding(f"p{i}"))),
                )
                fresh = "/api/v1/namespaces/fresh/pods"

                async def create_then_bind(i: int) -> None:
                    await ok(api.post(fresh, json=pod(f"f{i}")))
                    await ok(api.post(f"{fresh}/f{i}/binding", json=binding(f"f{i}")))

                await row(
                    "create, then bind at once (two writes)", BINDS_IN_FLIGHT, ops, create_then_bind
                )
                await row(
                    "delete of a bound pod (graceful: marked)",
                    CLIENTS,
                    ops,
                    lambda i: ok(api.delete(f"{pods}/p{i}")),
                )
        finally:
            cluster.stop()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=int, default=600, help="operations per row")
    args = p.parse_args()
    print(
        f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
        f"{args.ops} operations a row\n"
    )
    await measure(args.ops)
    print(f"\n(load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
