"""Scheduling throughput: pods created → bound, beside the raw binding floor of the same run.

    .venv/bin/python bench/scheduler.py [--pods 1000] [--nodes 1000]

Per node count (about a minute each): a fresh apiserver, N Node objects (as kwok
has them: no kubelet), then

- the floor: this script creates the pods (32 at a time) and binds each one
  itself through `pods/binding` as soon as it exists, with as many bindings in
  flight as the scheduler allows itself (MAX_INFLIGHT_BINDS): the API work of
  created → bound with no scheduler at all;
- binding only: pods created first, then only the bindings timed (what this
  bench used to call the floor);
- the scheduler: the same creates, the scheduler placing the pods; timed from
  the first create to the last binding seen on a watch (no polling);
- the decision alone: `schedule()` in this process on a cache of the same N
  nodes already holding pods, CPU time per pod (process time: the other
  processes on the machine do not count against it).

Prints a Markdown table for docs/benchmarks.md with kube-scheduler's published
scheduler_perf figures beside ours, then a second one: the CPU per pod of each
part of the pipeline (apiserver with its workers, etcd, the scheduler with its
Scheduled Events, and this process, which creates the pods through skiff's own
client as the controllers do) in the floor's run and in the scheduler's, and the
rate the machine's cores allow at that total: the ceiling whatever any one part
does. About half a minute a row (25 s at load 4 on 2 cores).

`--requests` adds the API requests and the apiserver's etcd requests per pod in
each run (from its /metrics, summed over its workers); `--profile DIR` records
`py-spy record --format raw` of each apiserver process and the scheduler during
each run (py-spy beside this python: `pip install py-spy` into the venv).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.config import load_config  # noqa: E402
from client.rest import Client  # noqa: E402
from scheduler.cache import Cache  # noqa: E402
from scheduler.framework import feasible_nodes_to_find, schedule  # noqa: E402
from scheduler.scheduler import MAX_INFLIGHT_BINDS  # noqa: E402

CREATE_CONCURRENCY = 32
# kube-scheduler's scheduler_perf "SchedulingBasic" on 5,000 fake nodes, as published
# by the Kubernetes perf dashboard (perf-dash.k8s.io): 680-810 pods/s.
KUBE_SCHEDULER = "680-810 pods/s (5,000 nodes)"


def node_body(i: int) -> dict[str, Any]:
    name = f"n{i:04d}"
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


NODE_STATUS = {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"}}


def pod(name: str, scheduler: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {"name": "c", "image": "x", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
        ]
    }
    if scheduler:
        spec["schedulerName"] = scheduler
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants alive now (the apiserver's workers, its etcd)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            for child in (task / "children").read_text().split():
                out += process_tree(int(child))
        except OSError:
            continue
    return out


class CpuMeter:
    """CPU seconds per part of the pipeline between two readings: the apiserver (all its
    workers), etcd, the scheduler, and this process (the creator, the binder of the floor,
    the watch that times it). Their sum per pod, against the machine's cores, is the
    ceiling any scheduler reaches here whatever its own speed."""

    def __init__(self, cluster: Cluster, state: Path) -> None:
        self.cluster, self.state = cluster, state
        self.scheduler = 0

    def read(self) -> dict[str, float]:
        etcd_file = self.state / "etcd.pid"
        etcd = process_tree(int(etcd_file.read_text())) if etcd_file.exists() else []
        api = [p for p in process_tree(self.cluster.procs[0].pid) if p not in etcd]
        return {
            "apiserver": sum(cpu_seconds(p) for p in api),
            "etcd": sum(cpu_seconds(p) for p in etcd),
            "scheduler": cpu_seconds(self.scheduler) if self.scheduler else 0.0,
            "bench": time.process_time(),
        }

    @staticmethod
    def per_pod(before: dict[str, float], after: dict[str, float], pods: int) -> dict[str, float]:
        """Milliseconds of CPU per pod, per part."""
        return {k: (after[k] - before[k]) * 1000 / pods for k in before}


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ([0-9.e+]+)$")


def request_counts(text: str) -> Counter[str]:
    """From the apiserver's /metrics (summed over its workers): API requests by verb and
    resource (`api POST pods`), etcd requests by operation and resource (`etcd Txn pods`)."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        name, labels = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if name == "apiserver_request_total":
            sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
            key = f"api {labels.get('verb')} {labels.get('resource')}{sub}"
        elif name == "etcd_request_duration_seconds_count":
            key = f"etcd {labels.get('operation')} {labels.get('type') or '-'}"
        else:
            continue
        out[key] += int(float(m.group(3)))
    return out


class Profiler:
    """`py-spy record` on the apiserver's workers and the scheduler for one run (--profile)."""

    def __init__(self, out: Path | None) -> None:
        self.out, self.procs = out, []  # type: ignore[var-annotated]

    def start(self, name: str, pids: dict[str, int]) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        for part, pid in pids.items():
            argv = [str(spy), "record", "--format", "raw", "--nonblocking", "--rate", "200"]
            out = str(self.out / f"{name}-{part}.txt")
            self.procs.append(
                subprocess.Popen(
                    [*argv, "--pid", str(pid), "-o", out],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(2)  # SIGINT: py-spy writes what it has
        for p in self.procs:
            p.wait(timeout=30)
        self.procs = []


async def watch_bound(api: Client, ns: str, rv: str, want: int) -> float:
    """Until `want` pods of `ns` have a node: the time the last one was seen bound.

    Only bound pods are asked for (`spec.nodeName!=`): the apiserver sends one event
    per pod, its binding, not its creation too, so the timing costs the pipeline
    little beside what it times."""
    bound: set[str] = set()
    async for _, obj in api.watch(
        "v1",
        "Pod",
        ns,
        resource_version=rv,
        field_selector="spec.nodeName!=",
        bookmarks=False,
        timeout_seconds=600,
    ):
        if (obj.get("spec") or {}).get("nodeName"):
            bound.add(obj["metadata"]["name"])
            if len(bound) >= want:
                return time.perf_counter()
    raise RuntimeError("the watch ended early")


async def wait_for_events(api: Client, ns: str, want: int) -> None:
    """Until `want` Events are stored in `ns` (the scheduler's Scheduled Events: nothing
    else writes there), counted once the pods are bound with a list of one item and its
    remainingItemCount, a few times a second. A watch open through the timed run would
    have cost the apiserver and etcd, inside the window, a filtered event per Event that
    no scheduler pays. At most a minute: the count is a report, a missing Event is not
    this bench's to fail on."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            while True:
                page = await api.get_path(f"/api/v1/namespaces/{ns}/events", params={"limit": "1"})
                meta = page.get("metadata") or {}
                if len(page.get("items") or []) + int(meta.get("remainingItemCount") or 0) >= want:
                    return
                await asyncio.sleep(0.2)


async def list_rv(api: Client, ns: str) -> str:
    page = await api.get_path(f"/api/v1/namespaces/{ns}/pods", params={"limit": "1"})
    return str(page["metadata"]["resourceVersion"])


async def create_all(api: Client, ns: str, bodies: list[dict[str, Any]], then: Any) -> None:
    """Create the pods, CREATE_CONCURRENCY at a time; `then(name)` after each create."""
    slots = asyncio.Semaphore(CREATE_CONCURRENCY)
    followers: list[asyncio.Task[None]] = []

    async def one(body: dict[str, Any]) -> None:
        async with slots:
            await api.create(body, namespace=ns)
        if then is not None:
            followers.append(asyncio.create_task(then(body["metadata"]["name"])))

    await asyncio.gather(*(one(b) for b in bodies))
    await asyncio.gather(*followers)


async def measure(
    nodes: int, pods: int, profile: Path | None = None, workers: int = 0
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start_apiserver(*(["--workers", str(workers)] if workers else []))
        meter = CpuMeter(cluster, Path(tmp))
        profiler = Profiler(profile)
        scraper = cluster.client(2)

        async def counts() -> Counter[str]:
            return request_counts((await scraper.get("/metrics")).text)

        def targets() -> dict[str, int]:
            etcd_file = Path(tmp) / "etcd.pid"
            etcd = process_tree(int(etcd_file.read_text())) if etcd_file.exists() else []
            api = [p for p in process_tree(cluster.procs[0].pid) if p not in etcd]
            found = {f"apiserver{i}": pid for i, pid in enumerate(api)}
            if meter.scheduler:
                found["scheduler"] = meter.scheduler
            return found

        try:
            # skiff's own client, as the pods' real creators (the controllers) use it; its
            # pool is made as wide as the creates and bindings this bench has in flight.
            api = Client(
                load_config(Path(tmp) / "admin.kubeconfig"),
                user_agent="bench",
                timeout=120,
                max_connections=CREATE_CONCURRENCY + MAX_INFLIGHT_BINDS + 4,
            )
            try:
                slots = asyncio.Semaphore(CREATE_CONCURRENCY)

                async def add_node(i: int) -> None:
                    async with slots:
                        made = await api.create(
                            {"apiVersion": "v1", "kind": "Node", **node_body(i)}
                        )
                        made["status"] = NODE_STATUS
                        await api.update(made, sub="status")

                await asyncio.gather(*(add_node(i) for i in range(nodes)))
                for ns in ("raw", "bind", "sched", "warm"):
                    await api.create(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                    )
                    # The account the controller-manager would make in every namespace (no
                    # controller-manager runs here): pod admission finds it in its cache, as
                    # in a cluster, instead of asking etcd for it once per pod. No token is
                    # mounted, so the pods are what they were without it.
                    await api.create(
                        {
                            "apiVersion": "v1",
                            "kind": "ServiceAccount",
                            "metadata": {"name": "default", "namespace": ns},
                            "automountServiceAccountToken": False,
                        }
                    )

                # The floor: created → bound by this script, bindings MAX_INFLIGHT_BINDS at once.
                binds = asyncio.Semaphore(MAX_INFLIGHT_BINDS)
                counter = iter(range(10**9))

                async def bind(name: str) -> None:
                    await bind_in("raw", name)

                async def bind_in(ns: str, name: str) -> None:
                    target = f"n{next(counter) % nodes:04d}"
                    async with binds:
                        await api.create_subresource(
                            "v1",
                            "Pod",
                            ns,
                            name,
                            "binding",
                            {
                                "apiVersion": "v1",
                                "kind": "Binding",
                                "metadata": {"name": name},
                                "target": {"kind": "Node", "name": target},
                            },
                        )

                profiler.start("floor", targets())
                n0 = await counts()
                cpu0 = meter.read()
                t0 = time.perf_counter()
                await create_all(api, "raw", [pod(f"r{i}", "nobody") for i in range(pods)], bind)
                floor = pods / (time.perf_counter() - t0)
                floor_cpu = CpuMeter.per_pod(cpu0, meter.read(), pods)
                floor_counts = await counts() - n0
                profiler.stop()
                # The binding alone (pods created first), as this bench measured before.
                await create_all(api, "bind", [pod(f"b{i}", "nobody") for i in range(pods)], None)
                t0 = time.perf_counter()
                await asyncio.gather(*(bind_in("bind", f"b{i}") for i in range(pods)))
                binding_only = pods / (time.perf_counter() - t0)

                cluster.start_component("scheduler", "--leader-elect", "false")
                meter.scheduler = cluster.procs[-1].pid
                # Ready when it has placed one pod (its caches are synced).
                rv = await list_rv(api, "warm")
                waiter = asyncio.create_task(watch_bound(api, "warm", rv, 1))
                await api.create(pod("w"), namespace="warm")
                await asyncio.wait_for(waiter, 60)

                rv = await list_rv(api, "sched")
                waiter = asyncio.create_task(watch_bound(api, "sched", rv, pods))
                profiler.start("scheduler", targets())
                n0 = await counts()
                cpu0 = meter.read()
                t0 = time.perf_counter()
                await create_all(api, "sched", [pod(f"s{i}") for i in range(pods)], None)
                created = time.perf_counter()
                last = await asyncio.wait_for(waiter, 600)
                bound = meter.read()
                # The Scheduled Events trail the bindings (one writer): their CPU is part
                # of the scheduler's work per pod, so wait until they are all written.
                await wait_for_events(api, "sched", pods)
                sched_cpu = CpuMeter.per_pod(cpu0, meter.read(), pods)
                sched_counts = await counts() - n0
                profiler.stop()
                return {
                    "floor": floor,
                    "binding_only": binding_only,
                    "rate": pods / (last - t0),
                    "lag": last - created,
                    "cpu_ms": sched_cpu["scheduler"],
                    "cpu_ms_bound": CpuMeter.per_pod(cpu0, bound, pods)["scheduler"],
                    "floor_cpu": floor_cpu,
                    "sched_cpu": sched_cpu,
                    "floor_counts": floor_counts,
                    "sched_counts": sched_counts,
                }
            finally:
                await api.close()
        finally:
            profiler.stop()
            await scraper.aclose()
            cluster.stop()


def decision_ms(nodes: int, pods: int = 300) -> float:
    """CPU time of one `schedule()` on `nodes` cached nodes, averaged over `pods` pods."""
    cache = Cache()
    for i in range(nodes):
        body = node_body(i)
        body["metadata"]["uid"] = f"u{i}"
        cache.set_node({**body, "spec": {}, "status": NODE_STATUS})

    def one(i: int) -> dict[str, Any]:
        p = pod(f"p{i}")
        p["metadata"].update(namespace="sched", uid=f"p{i}")
        return p

    for i in range(3 * nodes):  # a cluster already running pods
        cache.assume(f"sched/x{i}", one(i), f"n{i % nodes:04d}")
    rng = random.Random(1)
    todo = [one(i) for i in range(pods)]
    total = 0.0
    for i, p in enumerate(todo):
        t0 = time.process_time()
        decision = schedule(p, cache.schedulable_nodes(), rng)
        total += time.process_time() - t0
        assert decision.node is not None
        cache.assume(f"sched/p{i}", p, decision.node)
    return total * 1000 / pods


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000])
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="a directory for py-spy profiles (raw) of each apiserver process and the scheduler",
    )
    parser.add_argument(
        "--requests", action="store_true", help="also print API and etcd requests per pod"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="apiserver worker processes (default: its own)"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cpus, load average {load:.1f}; {args.pods} pods; "
        f"bindings in flight: {MAX_INFLIGHT_BINDS}"
        + (f"; apiserver --workers {args.workers}" if args.workers else "")
        + "\n"
    )
    print(
        "| nodes | nodes scored per pod | decision (CPU/pod) | raw floor, created → bound "
        "| binding only | skiff scheduler, created → bound | floor ÷ skiff | scheduler CPU/pod "
        "| kube-scheduler (scheduler_perf) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows: list[tuple[int, dict[str, Any]]] = []
    for nodes in args.nodes:
        decided = decision_ms(nodes)
        got = await measure(nodes, args.pods, args.profile, args.workers)
        rows.append((nodes, got))
        print(
            f"| {nodes:,} | {feasible_nodes_to_find(nodes)} | {decided:.2f} ms "
            f"| {got['floor']:.0f} pods/s | {got['binding_only']:.0f} pods/s "
            f"| {got['rate']:.0f} pods/s "
            f"| {got['floor'] / got['rate']:.2f}x | {got['cpu_ms']:.1f} ms "
            f"| {KUBE_SCHEDULER} |",
            flush=True,
        )
    print(
        "\ntargets: decision < 1 ms/pod; ≥ 300 pods/s; floor ÷ skiff ≤ 1.3 "
        f"(load average now {os.getloadavg()[0]:.1f})"
    )
    cores = os.cpu_count() or 1
    print(
        "\nCPU per pod, by part of the pipeline (ms; `bench` is this process: the creator, "
        "the floor's binder, the timing watch). The ceiling is what the machine's "
        f"{cores} cores allow at that total, whatever each part's speed:\n"
    )
    print(
        "| nodes | run | apiserver | etcd | scheduler (with its Events) | bench | total "
        "| ceiling: cores ÷ total |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for nodes, got in rows:
        for run, cpu in (("raw floor", got["floor_cpu"]), ("skiff scheduler", got["sched_cpu"])):
            total = sum(cpu.values())
            sched = f"{cpu['scheduler']:.2f}" if run == "skiff scheduler" else "-"
            print(
                f"| {nodes:,} | {run} | {cpu['apiserver']:.2f} | {cpu['etcd']:.2f} | {sched} "
                f"| {cpu['bench']:.2f} | {total:.2f} | {cores * 1000 / total:.0f} pods/s |"
            )

    if args.requests:
        print(
            "\nRequests per pod, summed over the apiserver's workers (`api`: served by the "
            "apiserver; `etcd`: the apiservers' requests to etcd; watches not counted):\n"
        )
        print("| nodes | request | raw floor | skiff scheduler |")
        print("|---|---|---|---|")
        for nodes, got in rows:
            floor_n, sched_n = got["floor_counts"], got["sched_counts"]
            for key in sorted(set(floor_n) | set(sched_n)):
                a, b = floor_n[key] / args.pods, sched_n[key] / args.pods
                if a >= 0.005 or b >= 0.005:
                    print(f"| {nodes:,} | {key} | {a:.2f} | {b:.2f} |")
            for kind in ("api", "etcd"):
                a = sum(v for k, v in floor_n.items() if k.startswith(kind)) / args.pods
                b = sum(v for k, v in sched_n.items() if k.startswith(kind)) / args.pods
                print(f"| {nodes:,} | **{kind}, all** | {a:.2f} | {b:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
