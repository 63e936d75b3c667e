"""`python -m simnode --nodes 200`: many simulated nodes in one process (kwok's idea).

The decisions are pure (sim.py); this is the shell: register the Nodes, renew
their Leases every `--lease-interval` seconds, watch the pods bound to them
and write the status a kubelet would, after `--pod-ready-delay` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import sys
import time
from typing import Any

from client import errors
from client.config import load_config
from client.informer import Informer
from client.lease import renew_lease
from client.rest import Client
from client.run import run_until_signalled

from . import sim

log = logging.getLogger("skiff.simnode")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Simulator:
    def __init__(self, client: Client, a: argparse.Namespace) -> None:
        self.client, self.a = client, a
        net = ipaddress.ip_network(a.address_range)
        self.names = [f"{a.name_prefix}{i:04d}" for i in range(1, a.nodes + 1)]
        self.addresses = {n: str(net.network_address + i) for i, n in enumerate(self.names, 1)}
        self.nodes = Informer(client, "v1", "Node")
        self.pods = Informer(client, "v1", "Pod")
        self.seen: dict[str, float] = {}  # pod uid -> when first seen on one of ours
        self.ips: dict[str, str] = {}  # pod uid -> its address
        self.next_ip: dict[str, int] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.sem = asyncio.Semaphore(a.concurrency)

    def node(self, name: str) -> dict[str, Any] | None:
        return self.nodes.store.get(name) if name in self.addresses else None

    async def register(self, name: str) -> None:
        obj = sim.node_object(
            name, self.addresses[name], cpu=self.a.cpu, memory=self.a.memory, pods=self.a.pods
        )
        async with self.sem:
            with contextlib.suppress(errors.Conflict):  # AlreadyExists: a restart
                await self.client.create(obj)
            await self.post_ready(name, obj["status"])

    async def post_ready(self, name: str, extra: dict[str, Any] | None = None) -> None:
        status = {**(extra or {}), "conditions": sim.node_conditions(now_iso())}
        await self.client.patch("v1", "Node", "", name, {"status": status}, sub="status")

    async def heartbeat(self, name: str) -> None:
        node = self.node(name)
        if node is None or sim.wants(node, "silent"):
            return
        async with self.sem:
            try:
                await renew_lease(
                    self.client,
                    namespace="kube-node-lease",
                    name=name,
                    holder=name,
                    duration_seconds=40,
                    owner_references=[
                        {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "name": name,
                            "uid": node["metadata"]["uid"],
                        }
                    ],
                )
                if not sim.is_ready(node):
                    await self.post_ready(name)
            except (errors.ApiError, OSError) as e:
                log.warning("heartbeat %s: %s", name, e)

    async def heartbeats(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.gather(*(self.heartbeat(n) for n in self.names))
            await asyncio.sleep(max(0.5, self.a.lease_interval - (time.monotonic() - start)))

    def enqueue(self, pod: dict[str, Any]) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.addresses:
            uid = pod["metadata"]["uid"]
            self.seen.setdefault(uid, time.monotonic())
            self.queue.put_nowait(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")

    def address_for(self, pod: dict[str, Any], node: dict[str, Any]) -> str:
        uid = pod["metadata"]["uid"]
        if uid not in self.ips:
            cidr = (node.get("spec") or {}).get("podCIDR")
            if not cidr:
                return ""
            name = node["metadata"]["name"]
            i = self.next_ip.get(name, 0)
            self.next_ip[name] = i + 1
            self.ips[uid] = sim.pod_ip(cidr, i)
        return self.ips[uid]

    async def sync(self, key: str) -> float | None:
        """One pod; returns seconds after which to look again, or None."""
        pod = self.pods.store.get(key)
        if pod is None:
            return None
        node_name = pod["spec"].get("nodeName", "")
        node = self.node(node_name)
        uid = pod["metadata"]["uid"]
        age = time.monotonic() - self.seen.get(uid, time.monotonic())
        action = sim.decide(pod, node, age, self.a.pod_ready_delay)
        if action == "" and node is not None and not sim.wants(node, "silent"):
            if age < self.a.pod_ready_delay and not pod["metadata"].get("deletionTimestamp"):
                return self.a.pod_ready_delay - age
            return None
        if node is None or action == "":
            return None
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            if action == "confirm-delete":
                await self.client.delete("v1", "Pod", ns, name, grace_period=0, uid=uid)
                self.seen.pop(uid, None)
                self.ips.pop(uid, None)
                return None
            ip = self.address_for(pod, node)
            if not ip:
                return 1.0  # no pod CIDR yet
            host = self.addresses[node_name]
            if action == "run":
                started = (pod.get("status") or {}).get("startTime") or now_iso()
                status = sim.running_status(
                    pod, host_ip=host, ip=ip, now=now_iso(), started=started
                )
            else:
                status = sim.failed_status(
                    pod, host_ip=host, ip=ip, now=now_iso(), crash=action == "crash"
                )
            await self.client.patch("v1", "Pod", ns, name, {"status": status}, sub="status")
            return 10.0 if action == "crash" else None
        except errors.NotFound:
            return None
        except (errors.ApiError, OSError) as e:
            log.warning("pod %s: %s", key, e)
            return 1.0

    async def worker(self) -> None:
        while True:
            key = await self.queue.get()
            async with self.sem:
                again = await self.sync(key)
            if again is not None:
                asyncio.get_running_loop().call_later(again, self.queue.put_nowait, key)

    async def run(self) -> None:
        self.nodes.start()
        await self.nodes.wait_for_sync()
        await asyncio.gather(*(self.register(n) for n in self.names))
        log.info("%d simulated nodes registered", len(self.names))
        self.pods.add_handlers(
            on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n), on_delete=None
        )

        def node_changed(_old: dict[str, Any], new: dict[str, Any]) -> None:
            # silent -> speaking again, or fail toggled: look at its pods again
            name = new["metadata"]["name"]
            if name in self.addresses:
                for pod in self.pods.store.list():
                    if pod["spec"].get("nodeName") == name:
                        self.enqueue(pod)

        self.nodes.add_handlers(on_update=node_changed)
        self.pods.start()
        await self.pods.wait_for_sync()
        tasks = [asyncio.create_task(self.worker()) for _ in range(self.a.concurrency)]
        tasks.append(asyncio.create_task(self.heartbeats()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await self.pods.stop()
            await self.nodes.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simnode", description=__doc__.split("\n")[0])
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--name-prefix", default="sim-")
    p.add_argument(
        "--address-range",
        default="172.31.0.0/16",
        help="InternalIPs of the simulated nodes (nothing answers there)",
    )
    p.add_argument("--cpu", default="8")
    p.add_argument("--memory", default="32Gi")
    p.add_argument("--pods", default="110")
    p.add_argument("--pod-ready-delay", type=float, default=1.0, help="seconds to Running+Ready")
    p.add_argument("--lease-interval", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16, help="API requests at once")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    client = Client(load_config(a.kubeconfig), user_agent="skiff-simnode")

    async def work() -> None:
        try:
            await Simulator(client, a).run()
        finally:
            await client.close()

    asyncio.run(run_until_signalled(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
