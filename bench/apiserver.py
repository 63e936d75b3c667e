"""API server throughput and latency, printed beside raw etcd on the same etcd.

    .venv/bin/python bench/apiserver.py [--ops 2000] [--watchers 100] [--profile FILE]

Starts a fresh apiserver (with its embedded etcd) in a temporary state
directory on 127.0.0.1, then measures, for 1, 8 and 32 concurrent clients:
creates and gets through the API (HTTPS, bearer token, keep-alive) and raw
etcd puts and gets against the very same etcd; gets both consistent (no
resourceVersion: a keys-only etcd check, then the watch cache) and with
`resourceVersion=0` (the watch cache alone); the same creates and gets from
`ab` (a C load generator, so the rows show the server, not the Python client);
lists of 1,000 objects; and how long a write takes to reach each of 100
watchers. Each row gives the CPU seconds the apiserver, etcd and the load
generator spent on it. It ends with the targets of issue 17, each beside its
raw-etcd anchor from this run. About 2-3 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
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


# Figures the summary compares with the targets: label -> (ops/s, p50 ms, p99 ms).
RESULTS: dict[str, tuple[float, float, float]] = {}


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The direct children of a process (its apiserver workers, its etcd)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class Cpu:
    """CPU seconds spent by the apiserver (parent and workers), its etcd and the load
    generator (this process and its children, e.g. ab) between two points."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def now(self) -> tuple[float, float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        gen = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        etcd = self.server.etcd_pid
        workers = [c for c in children(self.server.pid) if c != etcd]
        server = proc_cpu(self.server.pid) + sum(proc_cpu(w) for w in workers)
        return server, proc_cpu(etcd), gen

    def since(self, start: tuple[float, float, float]) -> str:
        end = self.now()
        srv, etcd, gen = (b - a for a, b in zip(start, end, strict=True))
        return f"   cpu: server {srv:5.1f}s etcd {etcd:5.1f}s load gen {gen:5.1f}s"


CPU: Cpu | None = None


def row(
    label: str, rate: float, lat: list[float], cpu_from: tuple[float, float, float] | None = None
) -> str:
    p50, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
    RESULTS[label] = (rate, p50, p99)
    text = f"  {label:<40} {rate:8.0f}/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
    return text + (CPU.since(cpu_from) if CPU and cpu_from else "")


def mark() -> tuple[float, float, float] | None:
    return CPU.now() if CPU else None


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
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    @property
    def etcd_pid(self) -> int:
        try:
            return int((self.state / "etcd.pid").read_text())
        except (OSError, ValueError):
            return 0

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

            start = mark()
            rate, lat = await run_clients(clients, total, put)
            print(row(f"etcd put, {clients} clients", rate, lat, start))
            start = mark()
            rate, lat = await run_clients(clients, total, get)
            print(row(f"etcd get, {clients} clients", rate, lat, start))


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

            async def get_any(i: int, url: str = url) -> None:
                r = await api.get(f"{url}/c{i}", params={"resourceVersion": "0"})
                assert r.status_code == 200

            start = mark()
            rate, lat = await run_clients(clients, total, create)
            print(row(f"create, {clients} clients", rate, lat, start))
            start = mark()
            rate, lat = await run_clients(clients, total, get)
            print(row(f"get, {clients} clients", rate, lat, start))
            start = mark()
            rate, lat = await run_clients(clients, total, get_any)
            print(row(f"get rv=0, {clients} clients", rate, lat, start))


def run_ab(server: Server, label: str, args: list[str], url: str) -> None:
    """One ab run (keep-alive, the admin token): a row like the others."""
    config = yaml.safe_load((server.state / "admin.kubeconfig").read_text())
    token = config["users"][0]["user"]["token"]
    start = mark()
    out = subprocess.run(
        ["ab", "-q", "-k", "-l", *args, "-H", f"Authorization: Bearer {token}", server.url + url],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    fields: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("Requests per second", "Failed requests", "Non-2xx responses"):
            fields[key] = value.split()[0]
        elif line.strip().startswith(("50%", "99%")):
            parts = line.split()
            fields[parts[0]] = parts[1]
    bad = int(fields.get("Failed requests", "0")) + int(fields.get("Non-2xx responses", "0"))
    rate = float(fields.get("Requests per second", 0))
    p50, p99 = float(fields.get("50%", "nan")), float(fields.get("99%", "nan"))
    RESULTS[label] = (rate, p50, p99)
    print(
        f"  {label:<40} {rate:8.0f}/s   p50 {p50:7.0f} ms   p99 {p99:7.0f} ms"
        + (CPU.since(start) if CPU and start else "")
        + (f"   ({bad} failed)" if bad else "")
    )


WRK_SCRIPT = """
wrk.method = os.getenv("WRK_METHOD")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")
wrk.headers["Content-Type"] = "application/json"
local body = os.getenv("WRK_BODY")
if body ~= "" then wrk.body = body end
-- WRK_PATCH=<collection path>/: each request a merge patch of a new value to one of 256
-- objects <path>c0..c255 in turn (a new value each time: never a no-op).
local patching = os.getenv("WRK_PATCH") or ""
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
if patching ~= "" then
  local n = 0
  local headers = {["Authorization"] = wrk.headers["Authorization"],
                   ["Content-Type"] = "application/merge-patch+json"}
  request = function()
    n = n + 1
    local body = string.format('{"data":{"n":"%d-%d"}}', tid, n)
    return wrk.format("PATCH", patching .. "c" .. (n % 256), headers, body)
  end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(
    server: Server,
    label: str,
    clients: int,
    url: str,
    body: str = "",
    seconds: int = 5,
    patch: str = "",
) -> None:
    """wrk (C, HTTP/1.1 keep-alive, 2 threads) for `seconds`: a row like the others.
    `patch`: a collection path whose objects c0..c255 each request patches in turn."""
    config = yaml.safe_load((server.state / "admin.kubeconfig").read_text())
    script = server.state / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "WRK_TOKEN": config["users"][0]["user"]["token"],
           "WRK_METHOD": "POST" if body else "GET", "WRK_BODY": body,
           "WRK_PATCH": patch}  # fmt: skip
    start = mark()
    out = subprocess.run(
        ["wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{seconds}s",
         "-s", str(script), server.url + url],
        capture_output=True, text=True, timeout=seconds + 120, env=env,
    )  # fmt: skip
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT")]
    if not result:
        print(f"  {label:<40} wrk failed: {out.stderr.strip() or out.stdout.strip()}")
        return
    n, duration_us, p50_us, p99_us, bad = result[0].split()[1:]
    rate = int(n) / (float(duration_us) / 1e6)
    p50, p99 = float(p50_us) / 1000, float(p99_us) / 1000
    RESULTS[label] = (rate, p50, p99)
    print(
        f"  {label:<40} {rate:8.0f}/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
        + (CPU.since(start) if CPU and start else "")
        + (f"   ({bad} failed)" if int(bad) else "")
    )


def bench_api_with_wrk(server: Server, creates_only: bool = False) -> None:
    """Creates, gets and lists from wrk, a C load generator keeping HTTP/1.1
    connections alive (as kubectl and client-go do): with the Python client on the
    same two cores the client is the busier process, so these rows show the server."""
    if not shutil.which("wrk"):
        print("  (wrk not installed: Debian's wrk; server-only rows skipped)")
        return
    print(
        "apiserver, from wrk (C, HTTP/1.1 keep-alive, 5 s per row; creates use generateName;"
        " patches a new value to 256 objects in turn)"
    )
    body = json.dumps({"metadata": {"generateName": "wrk-"}, "data": {"k": "v" * 100}})
    for clients in (1, 8, 32):
        run_wrk(
            server, f"wrk create, {clients} clients", clients,
            "/api/v1/namespaces/default/configmaps", body,
        )  # fmt: skip
    if creates_only:
        return
    one = "/api/v1/namespaces/bench-32/configmaps/c1"  # made by bench_api
    for clients in (1, 32):
        run_wrk(server, f"wrk get, {clients} clients", clients, one)
        run_wrk(server, f"wrk get rv=0, {clients} clients", clients, one + "?resourceVersion=0")
    # Updates: a merge patch (read the current object, compute, CAS write) of 256
    # objects in turn; made by bench_api (its --ops must be at least 256).
    many = "/api/v1/namespaces/bench-32/configmaps/"
    for clients in (1, 32):
        run_wrk(server, f"wrk patch, {clients} clients", clients, many, patch=many)


def bench_api_with_ab(server: Server, total: int) -> None:
    """The same creates and gets from ApacheBench, a C load generator: with httpx on the
    same two cores the Python client is the busier process, so these rows show the server."""
    if not shutil.which("ab"):
        print("  (ab not installed: apache2-utils; server-only rows skipped)")
        return
    body = server.state / "ab-body.json"
    body.write_text(json.dumps({"metadata": {"generateName": "ab-"}, "data": {"k": "v" * 100}}))
    # ab speaks HTTP/1.0, whose keep-alive uvicorn does not honour: every ab request
    # opens a new TLS connection, so these rows are dominated by TLS handshakes.
    print("apiserver, from ab (C, HTTP/1.0: a new TLS connection per request; generateName)")
    for clients in (1, 8, 32):
        run_ab(
            server, f"ab create, {clients} clients",
            ["-n", str(total), "-c", str(clients), "-p", str(body), "-T", "application/json"],
            "/api/v1/namespaces/default/configmaps",
        )  # fmt: skip


async def bench_list(server: Server) -> None:
    async with server.client(8) as api:
        await api.post("/api/v1/namespaces", json={"metadata": {"name": "bench-list"}})
        url = "/api/v1/namespaces/bench-list/configmaps"

        async def create(i: int) -> None:
            await api.post(url, json={"metadata": {"name": f"l{i:04d}"}, "data": {"k": "v"}})

        await run_clients(16, 1000, create)

        for version in ("", "0"):

            async def list_all(_: int, version: str = version) -> None:
                r = await api.get(url, params={"resourceVersion": version} if version else None)
                assert len(r.json()["items"]) == 1000

            start = mark()
            rate, lat = await run_clients(1, 40, list_all)
            label = "list of 1,000 objects" + (" rv=0" if version else "")
            print(row(label + ", 1 client", rate, lat, start))
        if shutil.which("wrk"):
            run_wrk(server, "wrk list of 1,000 objects, 1 client", 1, url)
            run_wrk(
                server, "wrk list of 1,000 objects rv=0, 1 client", 1, url + "?resourceVersion=0"
            )


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

        start = mark()
        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await all_ready.wait()
        await asyncio.sleep(0.5)
        for i in range(writes):
            body = {"metadata": {"name": f"w{i}", "annotations": {"sent": repr(time.time())}}}
            await api.post(url, json=body)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    p50, p99 = pct(delays, 50) * 1000, pct(delays, 99) * 1000
    RESULTS["watch"] = (0.0, p50, p99)
    label = f"watch delivery, {watchers} watchers x {writes} writes"
    print(
        f"  {label:<51} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
        + (CPU.since(start) if CPU and start else "")
    )


def summary() -> None:
    """The targets of issue 17, each beside its raw-etcd anchor measured in this run."""

    def get(label: str) -> tuple[float, float, float] | None:
        return RESULTS.get(label)

    def best(*labels: str) -> tuple[str, tuple[float, float, float]] | None:
        """The first of `labels` measured: wrk's rows show the server best (HTTP/1.1
        keep-alive, C); ab's open a TLS connection per request."""
        found = [(label, RESULTS[label]) for label in labels if label in RESULTS]
        return found[0] if found else None

    put32, get32 = get("etcd put, 32 clients"), get("etcd get, 32 clients")
    lines: list[tuple[str, str, str, str, bool | None]] = []
    create = best("wrk create, 32 clients", "create, 32 clients", "ab create, 32 clients")
    if create and put32:
        label, (rate, _, p99) = create
        lines.append((f"creates/s, 32 clients ({label.split(',')[0]})", f"{rate:,.0f}/s",
                      f"etcd puts {put32[0]:,.0f}/s", ">= 1,000/s", rate >= 1000))  # fmt: skip
        ratio = p99 / put32[2] if put32[2] else float("inf")
        lines.append((f"create p99, 32 clients ({label.split(',')[0]})", f"{p99:,.1f} ms",
                      f"etcd put p99 {put32[2]:,.1f} ms (x{ratio:.1f})", "<= 4x etcd",
                      ratio <= 4))  # fmt: skip
    for kind in ("get", "get rv=0"):
        found = best(f"wrk {kind}, 32 clients", f"{kind}, 32 clients")
        if found and get32:
            label, (rate, _, _) = found
            lines.append((f"{kind}, per s, 32 clients ({label.split(' ')[0]})", f"{rate:,.0f}/s",
                          f"etcd gets {get32[0]:,.0f}/s", ">= 2,000/s", rate >= 2000))  # fmt: skip
    lists = [label for label in RESULTS if label.endswith("list of 1,000 objects, 1 client")]
    lists += [label for label in RESULTS if label.endswith("objects rv=0, 1 client")]
    for label in lists:
        if label in RESULTS:
            rate = RESULTS[label][0]
            lines.append((label, f"{rate:,.0f}/s", "", ">= 200/s", rate >= 200))
    if "watch" in RESULTS:
        p99 = RESULTS["watch"][2]
        lines.append(("watch delivery p99, 100 watchers", f"{p99:,.1f} ms", "", "< 50 ms",
                      p99 < 50))  # fmt: skip
    print("\nsummary: the targets of issue 17")
    print(f"  {'':<44} {'measured':>12}   {'anchor (raw etcd, this run)':<34} {'target':<12} met")
    for what, value, anchor, target, met in lines:
        print(f"  {what:<44} {value:>12}   {anchor:<34} {target:<12} {'yes' if met else 'NO'}")


def start_profiler(server: Server, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (collapsed stacks, one line per stack, to `out`)."""
    assert server.proc is not None
    return subprocess.Popen(
        [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
         "record", "--pid", str(server.proc.pid), "--subprocesses", "--format", "raw",
         "--rate", "200", "--nonblocking", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=int, default=2000, help="operations per measurement")
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--watch-writes", type=int, default=50)
    p.add_argument(
        "--profile", metavar="FILE", default="",
        help="sample the server with py-spy during the API rows; collapsed stacks to FILE",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=None, help="apiserver worker processes (default: its own)"
    )
    p.add_argument(
        "--creates-only", action="store_true",
        help="only raw etcd and wrk's creates (the create p99 beside etcd's put p99; ~40 s)",
    )  # fmt: skip
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        server = Server(Path(tmp), args.workers)
        server.start()
        global CPU
        CPU = Cpu(server)
        try:
            etcd_port = json.loads((Path(tmp) / "etcd-ports.json").read_text())["client"]
            print(f"machine: {os.cpu_count()} cpus; {args.ops} operations per row; "
                  f"apiserver workers: {args.workers or 'default'}\n")  # fmt: skip
            await bench_etcd(etcd_port, args.ops, Path(tmp) / "pki")
            print()
            if args.creates_only:
                bench_api_with_wrk(server, creates_only=True)
                summary()
                return
            spy = start_profiler(server, args.profile) if args.profile else None
            await bench_api(server, args.ops)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            bench_api_with_wrk(server)
            bench_api_with_ab(server, args.ops)
            await bench_list(server)
            await bench_watch(server, args.watchers, args.watch_writes)
            summary()
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
