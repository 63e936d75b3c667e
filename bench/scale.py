"""Memory and scale: 10,000 pods on 500 simulated nodes, what the control plane holds.

    .venv/bin/python bench/scale.py [--pods 10000] [--nodes 500] [--node-kind simulated|objects]

A fresh apiserver (with its etcd), controller-manager and scheduler; N nodes,
by default the lab's simulated nodes (`python -m simnode`, kwok's idea, as
`skiff lab up --simulated-nodes` runs it: one process registers them, renews
their Leases every 10 s and reports each pod bound to them Running and Ready a
second later), or with `--node-kind objects` bare Node objects (no Leases: the
node lifecycle controller is told to wait an hour for them, so that the rest
after the creates is not 500 nodes going NotReady; pods stay
Pending-but-bound). The cluster CIDR has a /24 for each node. Then pods are
created 32 at a time in four equal steps, each step waited for until every
pod is Running (simulated) or bound (objects), seen on a watch. After each
step, and once more after `--settle` seconds at rest (the watch history holds
the last 75 s of events): the resident memory (RSS) of the
apiserver (its process tree without etcd), the controller-manager and the
scheduler, and their proportional share (PSS), which counts once the pages the
apiserver's workers share with the parent that forked them (a sum of RSS counts
them in every worker); at the end the etcd database size and the time to list
every pod (one list, and paginated 500 at a time as kubectl does).

The anchor is kwok's: one kube-apiserver holding 1,000 nodes and 100,000 pods
on a laptop. The target is the three components under 500 MiB together at
10,000 pods. Runs about 2-3 minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from cluster import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from client.informer import compact
from controllers.pod_fields import for_controllers
from scheduler.pod_fields import for_scheduler

MIB = 1024 * 1024
CONCURRENCY = 32
KWOK = "kwok: 1,000 nodes and 100,000 pods on one kube-apiserver (its README's claim)"


def pod(i: int) -> dict[str, Any]:
    """A pod shaped like a Deployment's: labels, a port, requests, an env var or two."""
    app = f"app{i % 50}"
    return {
        "metadata": {
            "name": f"{app}-{i:05d}",
            "labels": {"app": app, "pod-template-hash": "5d9c7b8f6d", "tier": "web"},
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.local/library/busybox:1.36",
                    "command": ["sh", "-c", "httpd -f -p 8080"],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "APP", "value": app}, {"name": "TIER", "value": "web"}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pss(pid: int) -> int:
    """The process's proportional share of the memory it maps (shared pages divided
    among the processes sharing them): summed over the apiserver's parent and the
    workers it forks, it counts the pages they share copy-on-write once, where a sum
    of RSS counts them in every process."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def db_size(state: Path) -> int:
    """The etcd database file(s) under the state directory."""
    return sum(p.stat().st_size for p in state.rglob("member/snap/db"))


class Counter:
    """Pods of one namespace seen bound (or Running, with `running`) on a watch."""

    def __init__(self, running: bool = False) -> None:
        self.bound: set[str] = set()
        self.changed = asyncio.Event()
        self.running = running

    async def run(self, api: httpx.AsyncClient, ns: str, rv: str) -> None:
        params = {"watch": "1", "resourceVersion": rv}
        async with api.stream(
            "GET", f"/api/v1/namespaces/{ns}/pods", params=params, timeout=None
        ) as r:
            async for line in r.aiter_lines():
                if line:
                    obj = json.loads(line)["object"]
                    if self.running:
                        done = (obj.get("status") or {}).get("phase") == "Running"
                    else:
                        done = bool((obj.get("spec") or {}).get("nodeName"))
                    if done:
                        self.bound.add(obj["metadata"]["name"])
                        self.changed.set()

    async def wait_for(self, n: int) -> None:
        while len(self.bound) < n:
            self.changed.clear()
            await self.changed.wait()


def cached_sizes(items: list[dict[str, Any]]) -> list[float]:
    """Bytes per pod held in a Python process: decoded as sent, as an informer keeps
    it by default (client/informer.py's `compact`), as the scheduler's and as the
    controller-manager's pod informers keep it (their transforms), each pod decoded
    on its own as a watch event is."""
    texts = [json.dumps(i) for i in items]
    out = []
    for keep in (
        json.loads,
        lambda t: compact(json.loads(t)),
        lambda t: for_scheduler(json.loads(t)),
        lambda t: for_controllers(json.loads(t)),
    ):
        gc.collect()
        tracemalloc.start()
        kept = [keep(t) for t in texts]
        used = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out.append(used / len(kept))
        del kept
    return out


async def node_objects(api: httpx.AsyncClient, nodes: int) -> None:
    """Bare Node objects with room for the pods: the scheduler's view, nothing behind it."""
    slots = asyncio.Semaphore(CONCURRENCY)

    async def add_node(i: int) -> None:
        name = f"n{i:04d}"
        async with slots:
            made = (
                await api.post(
                    "/api/v1/nodes",
                    json={"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}},
                )
            ).json()
            made["status"] = {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            }
            await api.put(f"/api/v1/nodes/{name}/status", json=made)

    await asyncio.gather(*(add_node(i) for i in range(nodes)))


async def ready_nodes(api: httpx.AsyncClient, nodes: int, seconds: float = 300) -> None:
    """Until `nodes` Nodes are Ready with a pod CIDR (simnode gives pods addresses from it)."""
    deadline = time.monotonic() + seconds
    while True:
        items = (await api.get("/api/v1/nodes")).json()["items"]
        ready = [
            n
            for n in items
            if (n.get("spec") or {}).get("podCIDR")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        ]
        if len(ready) >= nodes:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ready)} of {nodes} simulated nodes Ready")
        await asyncio.sleep(1)


async def run(
    nodes: int, pods: int, settle: float = 0.0, simulated: bool = True, workers: int = 0
) -> None:
    with tempfile.TemporaryDirectory(prefix="skiff-scale-") as tmp:
        state = Path(tmp)
        cluster = Cluster(state)
        cluster.start_apiserver(*(["--workers", str(workers)] if workers else []))
        try:
            apiserver = cluster.procs[0].pid
            async with cluster.client() as api:
                slots = asyncio.Semaphore(CONCURRENCY)
                if not simulated:
                    await node_objects(api, nodes)
                await api.post("/api/v1/namespaces", json={"metadata": {"name": "scale"}})
                # A pod CIDR (/24) for every node, as an operator sizes --cluster-cidr for
                # a cluster this big: the default /16 has 256, and the nodes beyond them
                # each get a CIDRNotAvailable Event again and again (~40 writes/s at rest).
                bits = max(1, (nodes - 1).bit_length())
                # Bare Node objects renew no Lease: the lifecycle controller waits an hour.
                grace = [] if simulated else ["--node-monitor-grace-period", "3600"]
                cluster.start_component(
                    "controllers",
                    "--leader-elect",
                    "false",
                    *grace,
                    "--cluster-cidr",
                    f"10.128.0.0/{24 - bits}",
                )
                manager = cluster.procs[-1].pid
                cluster.start_component("scheduler", "--leader-elect", "false")
                scheduler = cluster.procs[-1].pid
                if simulated:
                    cluster.spawn(
                        "simnode",
                        "--kubeconfig",
                        str(state / "admin.kubeconfig"),
                        "--nodes",
                        str(nodes),
                        "--name-prefix",
                        "n",
                        "--cpu",
                        "64",
                        "--memory",
                        "256Gi",
                    )
                    await ready_nodes(api, nodes)
                etcd_pid = int((state / "etcd.pid").read_text())

                rv = (await api.get("/api/v1/namespaces/scale/pods")).json()["metadata"][
                    "resourceVersion"
                ]
                counter = Counter(running=simulated)
                watcher = asyncio.create_task(counter.run(api, "scale", rv))
                # The baseline once both run: the controller-manager has made the
                # namespace's default ServiceAccount, the scheduler has bound a pod.
                deadline = time.monotonic() + 300
                while (
                    await api.get("/api/v1/namespaces/scale/serviceaccounts/default")
                ).status_code != 200:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no default ServiceAccount: controller-manager down?")
                    await asyncio.sleep(0.5)
                warm = pod(0)
                warm["metadata"]["name"] = "warm"
                (await api.post("/api/v1/namespaces/scale/pods", json=warm)).raise_for_status()
                await asyncio.wait_for(counter.wait_for(1), 300)
                counter.bound.discard("warm")

                def sample(done: int) -> tuple[int, ...]:
                    tree = [p for p in descendants(apiserver) if p != etcd_pid]
                    a = sum(rss(p) for p in tree)
                    shares = (sum(pss(p) for p in tree), pss(manager), pss(scheduler))
                    return done, a, rss(manager), rss(scheduler), rss(etcd_pid), *shares

                rows = [sample(0)]
                t0 = time.perf_counter()
                made = 0
                for step in range(1, 5):
                    target = pods * step // 4

                    async def create(i: int) -> None:
                        async with slots:
                            r = await api.post("/api/v1/namespaces/scale/pods", json=pod(i))
                            r.raise_for_status()

                    await asyncio.gather(*(create(i) for i in range(made, target)))
                    made = target
                    await asyncio.wait_for(counter.wait_for(target), 900)
                    rows.append(sample(target))
                placed = time.perf_counter() - t0
                watcher.cancel()
                if settle:
                    # The watch history is the last 75 s of events: at rest, what is left
                    # is what 10,000 pods cost, not the burst that made them.
                    await asyncio.sleep(settle)
                    rows.append(sample(pods))

                one_list, paged = [], []
                for _ in range(3):
                    t = time.perf_counter()
                    got = (await api.get("/api/v1/pods")).json()["items"]
                    one_list.append(time.perf_counter() - t)
                    assert len(got) >= pods, len(got)
                    t, cont, n = time.perf_counter(), "", 0
                    while True:
                        page = (
                            await api.get("/api/v1/pods", params={"limit": "500", "continue": cont})
                        ).json()
                        n += len(page["items"])
                        cont = page["metadata"].get("continue") or ""
                        if not cont:
                            break
                    paged.append(time.perf_counter() - t)
                sizes = cached_sizes(got)
                db = db_size(state)
        finally:
            cluster.stop()

    print(
        "| pods | apiserver RSS (sum) | controller-manager | scheduler | the three, RSS "
        "| the three, PSS | etcd (RSS) |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, (done, a, m, s, e, ap, mp, sp) in enumerate(rows):
        when = f"{done:,}" + (f", {settle:.0f} s later" if settle and i == len(rows) - 1 else "")
        print(
            f"| {when} | {a / MIB:.0f} MiB | {m / MIB:.0f} MiB | {s / MIB:.0f} MiB "
            f"| **{(a + m + s) / MIB:.0f} MiB** | **{(ap + mp + sp) / MIB:.0f} MiB** "
            f"| {e / MIB:.0f} MiB |"
        )
    first, last = rows[1], rows[-2 if settle else -1]  # the steps: past start-up
    grow = [(last[k] - first[k]) / max(last[0] - first[0], 1) / 1024 for k in (1, 2, 3)]
    print(
        f"\nper pod added: apiserver {grow[0]:.1f} KiB, controller-manager {grow[1]:.1f} KiB, "
        f"scheduler {grow[2]:.1f} KiB; one pod in a Python process: "
        f"{sizes[0] / 1024:.1f} KiB decoded as sent, {sizes[1] / 1024:.1f} KiB compacted "
        f"(managedFields dropped, strings interned), {sizes[2] / 1024:.1f} KiB as the "
        f"scheduler's informer keeps it, {sizes[3] / 1024:.1f} KiB as the "
        "controller-manager's"
    )
    print(
        f"{pods:,} pods created and {'Running' if simulated else 'bound'} in {placed:.0f} s "
        f"({pods / placed:.0f} pods/s); "
        f"etcd db {db / MIB:.0f} MiB; list all pods: "
        f"{statistics.median(one_list):.2f} s in one list, "
        f"{statistics.median(paged):.2f} s paginated by 500 (median of 3)"
    )
    end = rows[-1]
    total, shared = (end[1] + end[2] + end[3]) / MIB, (end[5] + end[6] + end[7]) / MIB
    print(
        f"target: the three under 500 MiB at 10,000 pods: at {end[0]:,} pods {total:.0f} MiB "
        f"as a sum of RSS ({'met' if total < 500 else 'NOT met'}), {shared:.0f} MiB as PSS, "
        f"shared pages counted once ({'met' if shared < 500 else 'NOT met'}); anchor: {KWOK}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument(
        "--settle", type=float, default=80.0, help="seconds at rest before the last sample"
    )
    parser.add_argument(
        "--node-kind",
        choices=["simulated", "objects"],
        default="simulated",
        help="the lab's simulated nodes (pods Running), or bare Node objects (pods bound)",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="apiserver worker processes (default: its own)"
    )
    args = parser.parse_args()
    simulated = args.node_kind == "simulated"
    kind = "simulated nodes (simnode)" if simulated else "Node objects"
    print(
        f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
        f"{args.pods:,} pods on {args.nodes} {kind}"
        + (f"; apiserver --workers {args.workers}" if args.workers else "")
        + "\n"
    )
    asyncio.run(run(args.nodes, args.pods, args.settle, simulated, args.workers))
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
