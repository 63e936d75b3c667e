"""The apiserver's watch cache of N bound pods, measured in one process (issue 17).

What one apiserver worker holds for its pods hub, and what that costs it:
memory per pod (tracemalloc: the hub's state after its fill and a first list),
objects the garbage collector tracks per pod, the time of a full collection
with the cache in place (before and after `gc.freeze()`, which the apiserver
does once started), and reads served from the cache: a list of every pod at
resourceVersion=0, a list by field selector (one node's pods) and a GET.

A fresh apiserver (with its etcd) makes one pod as `bench/scale.py` does and
binds it; N copies of that bound pod (names and uids changed) are then written
to etcd directly, and a watch cache (`WatchHubs`, `Registry`) is built in this
process from them, as each worker builds its own. The anchor is the pods' size
as stored (etcd's value bytes).

    .venv/bin/python bench/watch_cache.py --pods 10000    # about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from cluster import Cluster
from scale import pod

from api import resources
from apiserver import responses
from apiserver.admission import ServiceAllocation
from apiserver.registry import ListOptions, Registry
from apiserver.requests import field_selector
from apiserver.storage import ClientTLS, Store, UnavailableError, encode
from apiserver.watch import WatchHubs

NS = "wc"
NODES = 500
KIB = 1024


async def template(cluster: Cluster) -> dict[str, Any]:
    """One pod as scale.py makes it, created and bound through the API."""
    async with cluster.client() as api:
        (await api.post("/api/v1/namespaces", json={"metadata": {"name": NS}})).raise_for_status()
        # The namespace's ServiceAccount comes from the controller-manager, not run here.
        await api.post(
            f"/api/v1/namespaces/{NS}/serviceaccounts", json={"metadata": {"name": "default"}}
        )
        made = await api.post(f"/api/v1/namespaces/{NS}/pods", json=pod(0))
        made.raise_for_status()
        name = made.json()["metadata"]["name"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "n0000"},
        }
        (
            await api.post(f"/api/v1/namespaces/{NS}/pods/{name}/binding", json=binding)
        ).raise_for_status()
        return (await api.get(f"/api/v1/namespaces/{NS}/pods/{name}")).json()


async def fill_etcd(store: Store, bound: dict[str, Any], count: int) -> int:
    """`count` copies of `bound` in etcd; returns the mean stored value size."""
    slots = asyncio.Semaphore(16)
    sizes: list[int] = []

    async def one(i: int) -> None:
        obj = copy.deepcopy(bound)
        meta = obj["metadata"]
        meta["name"] = f"p{i:05d}"
        meta["uid"] = str(uuid.uuid4())
        meta.pop("resourceVersion", None)
        obj["spec"]["nodeName"] = f"n{i % NODES:04d}"
        sizes.append(len(encode(obj)))
        async with slots:
            for attempt in range(5):  # a loaded machine: etcd may time a request out
                try:
                    await store.create(f"/registry/pods/{NS}/{meta['name']}", obj)
                    return
                except UnavailableError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(1)

    await asyncio.gather(*(one(i) for i in range(count)))
    return int(statistics.mean(sizes))


def tracked_in(root: Any) -> int:
    """Objects the garbage collector tracks (and walks) among those `root` holds:
    its containers and the cached elements, followed down (each counted once)."""
    seen: set[int] = set()
    stack, count = [root], 0
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        count += gc.is_tracked(o)
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list | tuple):
            stack.extend(o)
        elif hasattr(o, "__slots__"):
            stack.extend(getattr(o, name) for name in o.__slots__ if hasattr(o, name))
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            stack.append(vars(o))
    return count


def timed(runs: int, fn: Any) -> float:
    """Median seconds of `fn()` over `runs` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def measure(store: Store, count: int) -> dict[str, float]:
    info = resources.lookup("", "v1", "pods")
    assert info is not None
    hubs = WatchHubs(store)
    out: dict[str, float] = {}
    try:
        registry = Registry(store, hubs, ServiceAllocation(None, None))  # type: ignore[arg-type]
        gc.collect()
        out["full gc, no cache"] = timed(3, gc.collect)
        tracemalloc.start()
        hub = await hubs.hub("/registry/pods/")
        items, *_ = await registry.list(info, NS, ListOptions(from_cache="any"))
        count = len(items)  # the copies and the pod they were made from
        del items
        gc.collect()
        out["bytes per pod"] = tracemalloc.get_traced_memory()[0] / count
        tracemalloc.stop()
        for _ in range(3):
            gc.collect()
        out["tracked per pod"] = tracked_in(hub.objects) / count
        out["full gc"] = timed(3, gc.collect)
        gc.freeze()
        out["full gc, frozen"] = timed(3, gc.collect)
        gc.unfreeze()

        async def list_all() -> None:
            items, *_ = await registry.list(info, NS, ListOptions(from_cache="any"))
            encoded = getattr(items, "encoded", None)
            if encoded is None:  # what the handler does with a list it has to encode
                responses.list_object(info, items, 0)
            else:  # responses.send_list
                b",".join(encoded)

        one_node = field_selector(info, "spec.nodeName=n0007")

        async def list_node() -> None:
            items, *_ = await registry.list(
                info, NS, ListOptions(fields=one_node, from_cache="any")
            )
            assert len(items) >= len(range(7, count - 1, NODES))

        async def get_one() -> None:
            read_json = getattr(registry, "read_json", None)
            for i in range(100):  # what the handler answers with
                if read_json is not None:
                    await read_json(info, NS, f"p{i:05d}", "0")
                else:
                    responses.send((await registry.read(info, NS, f"p{i:05d}", "0")).obj)

        for label, fn, runs in (
            ("list all", list_all, 5),
            ("list by field", list_node, 20),
            ("get x100", get_one, 20),
        ):
            await fn()
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                await fn()
                times.append(time.perf_counter() - t)
            out[label] = statistics.median(times)
        del hub
    finally:
        await hubs.stop()
    return out


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="skiff-wc-") as tmp:
        state = Path(tmp)
        cluster = Cluster(state)
        cluster.start_apiserver()
        try:
            bound = await template(cluster)
            pki = state / "pki"
            store = Store(
                [f"https://127.0.0.1:{_etcd_port(state)}"],
                tls=ClientTLS(
                    pki / "etcd" / "ca.crt",
                    pki / "apiserver-etcd-client.crt",
                    pki / "apiserver-etcd-client.key",
                ),
            )
            await store.connect(retry_for=20)
            try:
                stored = await fill_etcd(store, bound, count)
                got = await measure(store, count)
            finally:
                await store.close()
        finally:
            cluster.stop()
    print(f"watch cache of {count:,} bound pods (stored value {stored / KIB:.1f} KiB each), "
          f"one process, Python {sys.version.split()[0]}\n")  # fmt: skip
    print("| memory per pod | GC-tracked objects per pod | full collection (without the cache) "
          "| same, frozen | list all, rv=0 | list one node's pods | GET rv=0 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {got['bytes per pod'] / KIB:.1f} KiB | {got['tracked per pod']:.1f} "
        f"| {got['full gc'] * 1000:.0f} ms ({got['full gc, no cache'] * 1000:.0f} ms) "
        f"| {got['full gc, frozen'] * 1000:.1f} ms "
        f"| {got['list all'] * 1000:.1f} ms | {got['list by field'] * 1000:.2f} ms "
        f"| {got['get x100'] * 10_000:.0f} µs |"
    )


def _etcd_port(state: Path) -> int:
    return int(json.loads((state / "etcd-ports.json").read_text())["client"])


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=10_000)
    asyncio.run(main(p.parse_args().pods))
