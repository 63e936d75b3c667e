"""Cluster DNS: queries per second and latency for a Service name, beside a plain UDP echo.

    .venv/bin/python bench/dns.py [--services 1000] [--seconds 5]

Two servers, each its own process on 127.0.0.1 with the same asyncio UDP
endpoint: `skiff dns`'s `DNSServer` (answering from a table of N Services, as
its informer caches would hold them) and an echo that sends each datagram
back (the floor: what the event loop and the socket cost). For each:

- paced: 1,000 queries/s for `--seconds`, latency of each (p50, p99);
- flat out: 32 queries in flight, answers per second.

The load generator is one Python process on the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# This file is bench/dns.py, and Python puts bench/ first on sys.path: without
# this line `import dns` would import this very script instead of dnspython.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

from proxy.dns import DNSServer  # noqa: E402


class Table:
    def __init__(self, n: int) -> None:
        self.services = {
            ("default", f"svc-{i}"): {
                "metadata": {"namespace": "default", "name": f"svc-{i}"},
                "spec": {
                    "clusterIP": f"10.96.{i // 250 + 1}.{i % 250 + 1}",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                },
            }
            for i in range(n)
        }

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.services.get((namespace, name))

    def endpoint_slices(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return []


async def serve(kind: str, port: int, services: int) -> None:
    loop = asyncio.get_running_loop()
    if kind == "dns":
        table = Table(services)
        server = DNSServer(table, upstreams=[])
        for ns, name in table.services:  # as the informers' add events do at start
            server.precompute(ns, name)
        await server.start("127.0.0.1", port)
    else:

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(data, addr)  # type: ignore[attr-defined]

        await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
    print("ready", flush=True)
    await asyncio.Event().wait()


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.latencies: list[float] = []
        self.warm: list[float] = []  # answers to names asked before (served from the cache)
        self.first: list[float] = []  # the first answer for each name
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.bad = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        qid = int.from_bytes(data[:2], "big")
        started = self.sent.pop(qid, None)
        if started is None:
            return
        self.latencies.append(time.perf_counter() - started)
        if qid >= 1000:
            self.warm.append(self.latencies[-1])
        else:
            self.first.append(self.latencies[-1])
        if data[3] & 0x0F != dns.rcode.NOERROR:
            self.bad += 1
        waiter = self.waiters.pop(qid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def query(qid: int) -> bytes:
    q = dns.message.make_query(f"svc-{qid % 1000}.default.svc.cluster.local.", "A", id=qid)
    return q.to_wire()


async def paced(
    port: int, rate: int, seconds: float
) -> tuple[list[float], list[float], list[float], int, int]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    wires = [query(i) for i in range(65536)]
    total = int(rate * seconds)
    started = time.perf_counter()
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        qid = i % 65536
        client.sent[qid] = time.perf_counter()
        transport.sendto(wires[qid])
    await asyncio.sleep(0.5)
    transport.close()
    return client.latencies, client.warm, client.first, total - len(client.latencies), client.bad


async def flat_out(port: int, seconds: float, in_flight: int = 32) -> float:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    wires = [query(i) for i in range(65536)]
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal counter
        i = w
        while time.perf_counter() < deadline:
            qid = i % 65536
            waiter = loop.create_future()
            client.waiters[qid] = waiter
            client.sent[qid] = time.perf_counter()
            transport.sendto(wires[qid])
            try:
                await asyncio.wait_for(waiter, 1)
                counter += 1
            except TimeoutError:
                client.sent.pop(qid, None)
            i += in_flight

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(in_flight)))
    took = time.perf_counter() - started
    transport.close()
    return counter / took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--serve", choices=["dns", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.services))
        return 0

    print(
        f"| server | paced {args.rate}/s: p50 | p99 | p99 of first answers "
        "| p99 of repeated names | lost "
        "| flat out (32 in flight) |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind in ("echo", "dns"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                kind,
                "--port",
                str(port),
                "--services",
                str(args.services),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            latencies, warm, first, lost, bad = asyncio.run(paced(port, args.rate, args.seconds))
            assert bad == 0 or kind == "echo", f"{bad} answers were not NOERROR"
            qps = asyncio.run(flat_out(port, args.seconds))
            print(
                f"| {kind} | {statistics.median(latencies) * 1000:.2f} ms "
                f"| {pct(latencies, 0.99) * 1000:.2f} ms | {pct(first, 0.99) * 1000:.2f} ms "
                f"| {pct(warm, 0.99) * 1000:.2f} ms "
                f"| {lost} | {qps:,.0f} answers/s |",
                flush=True,
            )
        finally:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
