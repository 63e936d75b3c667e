"""API server throughput and latency, printed beside raw etcd on the same etcd.

    .venv/bin/python bench/apiserver.py [--creates 2000] [--watchers 100]

Starts a fresh apiserver (with its embedded etcd) in a temporary state
directory on 127.0.0.1, then measures, for 1, 8 and 32 concurrent clients:
creates and gets through the API (HTTPS, bearer token, keep-alive) and raw
`aetcd` puts and gets against the very same etcd; a list of 1,000 objects;
and how long a write takes to reach each of 100 watchers. Everything runs on
this machine in this run, so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import httpx
import yaml
from aetcd import rpc

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run_clients(
    clients: int, total: int, op: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """`total` calls of op spread over `clients` concurrent workers: (ops/s, latencies)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return total / (time.perf_counter() - start), latencies


def row(label: str, rate: float, lat: list[float]) -> str:
    return (
        f"  {label:<34} {rate:8.0f}/s   p50 {pct(lat, 50) * 1000:7.2f} ms"
        f"   p99 {pct(lat, 99) * 1000:7.2f} ms"
    )


class Server:
    def __init__(self, state: Path, workers: int | None = None) -> None:
        self.state = state
        self.workers = workers  # None: the apiserver's default (one per CPU, at most 4)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.state / "apiserver.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apiserver", "--state-dir", str(self.state),
             "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
             "--log-level", "warning",
             *(["--workers", str(self.workers)] if self.workers else [])],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ctx = ssl.create_default_context(cafile=str(self.state / "pki" / "ca.crt"))
                if httpx.get(self.url + "/readyz", verify=ctx, timeout=1).status_code == 200:
                    return
            except (OSError, httpx.HTTPError, ssl.SSLError):
                time.sleep(0.2)
        raise RuntimeError("apiserver did not become ready")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        pid_file = self.state / "etcd.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def client(self, connections: int) -> httpx.AsyncClient:
        config = yaml.safe_load((self.state / "admin.kubeconfig").read_text())
        token = config["users"][0]["user"]["token"]
        ctx = ssl.create_default_context(cafile=str(self.state / "pki" / "ca.crt"))
        return httpx.AsyncClient(
            base_url=self.url,
            verify=ctx,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=60,
        )


async def bench_etcd(port: int, total: int, pki: Path) -> None:
    """The same etcd over the same TLS, with the apiserver's client certificate,
    through etcd's gRPC KV stub (aetcd's put and get make these very calls)."""
    print("raw etcd (gRPC over TLS with the apiserver's client certificate, same etcd, same run)")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "etcd" / "ca.crt").read_bytes(),
        private_key=(pki / "apiserver-etcd-client.key").read_bytes(),
        certificate_chain=(pki / "apiserver-etcd-client.crt").read_bytes(),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        kv = rpc.KVStub(channel)
        value = json.dumps({"metadata": {"name": "x"}, "data": {"k": "v" * 100}}).encode()
        for clients in (1, 8, 32):

            async def put(i: int, c: int = clients) -> None:
                await kv.Put(rpc.PutRequest(key=f"/bench/raw/{c}/{i}".encode(), value=value))

            async def get(i: int, c: int = clients) -> None:
                await kv.Range(rpc.RangeRequest(key=f"/bench/raw/{c}/{i}".encode()))

            rate, lat = await run_clients(clients, total, put)
            print(row(f"put, {clients} clients", rate, lat))
            rate, lat = await run_clients(clients, total, get)
            print(row(f"get, {clients} clients", rate, lat))


async def bench_api(server: Server, total: int) -> None:
    print("apiserver (HTTPS, JSON, validation, etcd txn)")
    for clients in (1, 8, 32):
        ns = f"bench-{clients}"
        async with server.client(clients) as api:
            await api.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
            url = f"/api/v1/namespaces/{ns}/configmaps"

            async def create(i: int, url: str = url) -> None:
                r = await api.post(
                    url, json={"metadata": {"name": f"c{i}"}, "data": {"k": "v" * 100}}
                )
                assert r.status_code == 201, r.text

            async def get(i: int, url: str = url) -> None:
                r = await api.get(f"{url}/c{i}")
                assert r.status_code == 200

            rate, lat = await run_clients(clients, total, create)
            print(row(f"create, {clients} clients", rate, lat))
            rate, lat = await run_clients(clients, total, get)
            print(row(f"get, {clients} clients", rate, lat))


def bench_api_with_ab(server: Server, total: int) -> None:
    """The same creates from ApacheBench, a C load generator: with httpx on the same two
    cores the Python client is the busier process, so these rows show the server."""
    if not shutil.which("ab"):
        print("  (ab not installed: apache2-utils; server-only rows skipped)")
        return
    config = yaml.safe_load((server.state / "admin.kubeconfig").read_text())
    token = config["users"][0]["user"]["token"]
    body = server.state / "ab-body.json"
    body.write_text(json.dumps({"metadata": {"generateName": "ab-"}, "data": {"k": "v" * 100}}))
    print("apiserver, creates from ab (C, keep-alive; generateName)")
    for clients in (1, 8, 32):
        out = subprocess.run(
            ["ab", "-q", "-k", "-l", "-n", str(total), "-c", str(clients), "-p", str(body),
             "-T", "application/json", "-H", f"Authorization: Bearer {token}",
             f"{server.url}/api/v1/namespaces/default/configmaps"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        fields = {}
        for line in out.stdout.splitlines():
            key, _, value = line.strip().partition(":")
            if key in ("Requests per second", "Failed requests", "Non-2xx responses"):
                fields[key] = value.split()[0]
            elif key in ("50%", "99%") or line.strip().startswith(("50%", "99%")):
                parts = line.split()
                fields[parts[0]] = parts[1]
        bad = int(fields.get("Failed requests", "0")) + int(fields.get("Non-2xx responses", "0"))
        rate = float(fields.get("Requests per second", 0))
        label = f"create, {clients} clients"
        print(
            f"  {label:<34} {rate:8.0f}/s"
            f"   p50 {fields.get('50%', '?'):>7} ms   p99 {fields.get('99%', '?'):>7} ms"
            + (f"   ({bad} failed)" if bad else "")
        )


async def bench_list(server: Server) -> None:
    async with server.client(8) as api:
        await api.post("/api/v1/namespaces", json={"metadata": {"name": "bench-list"}})
        url = "/api/v1/namespaces/bench-list/configmaps"

        async def create(i: int) -> None:
            await api.post(url, json={"metadata": {"name": f"l{i:04d}"}, "data": {"k": "v"}})

        await run_clients(16, 1000, create)

        async def list_all(_: int) -> None:
            r = await api.get(url)
            assert len(r.json()["items"]) == 1000

        rate, lat = await run_clients(1, 20, list_all)
        print(row("list of 1,000 objects, 1 client", rate, lat))


async def bench_watch(server: Server, watchers: int, writes: int) -> None:
    async with server.client(watchers + 4) as api:
        await api.post("/api/v1/namespaces", json={"metadata": {"name": "bench-watch"}})
        url = "/api/v1/namespaces/bench-watch/configmaps"
        rv = (await api.get(url)).json()["metadata"]["resourceVersion"]
        delays: list[float] = []
        ready = 0
        all_ready = asyncio.Event()

        async def watch() -> None:
            nonlocal ready
            params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": 120}
            async with api.stream("GET", url, params=params) as r:
                ready += 1
                if ready == watchers:
                    all_ready.set()
                got = 0
                async for line in r.aiter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    sent = float(event["object"]["metadata"]["annotations"]["sent"])
                    delays.append(time.time() - sent)
                    got += 1
                    if got == writes:
                        return

        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await all_ready.wait()
        await asyncio.sleep(0.5)
        for i in range(writes):
            body = {"metadata": {"name": f"w{i}", "annotations": {"sent": repr(time.time())}}}
            await api.post(url, json=body)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    print(
        f"  watch delivery, {watchers} watchers x {writes} writes:"
        f"   p50 {pct(delays, 50) * 1000:7.2f} ms   p99 {pct(delays, 99) * 1000:7.2f} ms"
    )


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=int, default=2000, help="operations per measurement")
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--watch-writes", type=int, default=50)
    p.add_argument(
        "--workers", type=int, default=None, help="apiserver worker processes (default: its own)"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        server = Server(Path(tmp), args.workers)
        server.start()
        try:
            etcd_port = json.loads((Path(tmp) / "etcd-ports.json").read_text())["client"]
            print(f"machine: {os.cpu_count()} cpus; {args.ops} operations per row; "
                  f"apiserver workers: {args.workers or 'default'}\n")  # fmt: skip
            await bench_etcd(etcd_port, args.ops, Path(tmp) / "pki")
            print()
            await bench_api(server, args.ops)
            bench_api_with_ab(server, args.ops)
            await bench_list(server)
            await bench_watch(server, args.watchers, args.watch_writes)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
