"""The proxy's sync at scale, beside a plain restore of the same text (the floor).

    .venv/bin/python bench/proxy_sync.py [--services 1000 5000] [--backends nft legacy nftables]

For each mode (the iptables mode on the nft and on the legacy backend, and
the nftables mode) and size, in a network namespace this script creates (and
deletes), with N Services x 4 ready endpoints:

- floor: `iptables-restore -w --noflush` (nftables mode: `nft -f`) of the
  full rendered text into a fresh namespace, nothing else;
- full sync: the proxy's own `Syncer.sync` (iptables-save to find our chains,
  the jumps checked, render, restore) into another fresh namespace;
- one endpoint change: one endpoint of one Service replaced, then the same
  `Syncer.sync` (a partial sync: a minimal restore of that Service's chains),
  repeated 20 times on different Services, median and max reported;
- one Service added (its jump goes into SKIFF-SERVICES, edited in place);
- full sync again: a restarted proxy's first sync over the loaded table (what
  the hourly full sync does too; the nftables mode lists the table's chains
  and sets, flushes it and writes it again, keeping affinity sets' members).

No traffic is sent anywhere; the namespaces have no interfaces but loopback.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from proxy import nft_rules
from proxy.apply import Iptables
from proxy.nft_apply import Nft, NftSyncer
from proxy.rules import Node, by_service, render
from proxy.sync import Syncer

NODE = Node("bench-node", ("192.168.50.2",), "10.244.0.0/16")


def cluster(n: int) -> tuple[dict, dict]:
    services, slices = {}, {}
    for i in range(n):
        name = f"svc-{i}"
        services[("default", name)] = {
            "metadata": {"namespace": "default", "name": name},
            "spec": {
                "clusterIP": f"10.96.{i // 250 + 1}.{i % 250 + 1}",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            },
        }
        slices[("default", name)] = [endpoint_slice(name, [_pod(i, k) for k in range(4)])]
    return services, slices


def _pod(i: int, k: int) -> str:
    n = i * 4 + k
    return f"10.{244 + n // 65000}.{(n // 250) % 260 % 256}.{n % 250 + 1}"


def endpoint_slice(name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "default",
            "name": name,
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


class Netns:
    def __init__(self, backend: str) -> None:
        self.name = f"skiff-bench-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        prefix = ("nsenter", f"--net=/run/netns/{self.name}")
        self.iptables = Iptables(backend=backend, prefix=prefix)
        self.nft = Nft(prefix=prefix)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def measure(backend: str, n: int) -> dict[str, float]:
    services, slices = cluster(n)
    nftables = backend == "nftables"
    all_slices = [s for v in slices.values() for s in v]
    if nftables:
        text = nft_rules.render(services.values(), all_slices, NODE)
    else:
        text = render(services.values(), all_slices, NODE)
    out: dict[str, float] = {"lines": text.count("\n")}

    # The floor's namespace is deleted only at the end: the kernel frees a big
    # table in the background, which would otherwise slow the full sync after it.
    floor = Netns(backend)
    ns: Netns | None = None
    try:
        started = time.perf_counter()
        floor.nft.load(text) if nftables else floor.iptables.restore(text)
        out["floor"] = time.perf_counter() - started
        ns = Netns(backend)
        syncer: Any = (
            NftSyncer(ns.nft, NODE, full_sync_period=3600)
            if nftables
            else Syncer(ns.iptables, NODE, full_sync_period=3600)
        )
        started = time.perf_counter()
        syncer.sync(NODE, set(), services, slices)
        out["full"] = time.perf_counter() - started

        changes, decided = [], []
        for j in range(20):
            i = (j * 7919) % n
            key = ("default", f"svc-{i}")
            ips = [_pod(i, k) for k in range(3)] + [f"10.250.{j}.{i % 250 + 1}"]
            slices[key] = [endpoint_slice(key[1], ips)]
            started = time.perf_counter()
            syncer.plan(NODE, {key}, services, slices, False)
            decided.append(time.perf_counter() - started)  # skiff's own part, no iptables
            started = time.perf_counter()
            plan = syncer.sync(NODE, {key}, services, slices)
            changes.append(time.perf_counter() - started)
            assert not plan.full and plan.rerendered == 1
        out["change_median"] = statistics.median(changes)
        out["change_max"] = max(changes)
        out["decide_median"] = statistics.median(decided)

        key = ("default", "added")
        services[key] = {
            "metadata": {"namespace": "default", "name": "added"},
            "spec": {"clusterIP": "10.111.0.1", "ports": [{"name": "http", "port": 80}]},
        }
        slices[key] = [endpoint_slice("added", ["10.251.0.1"])]
        started = time.perf_counter()
        syncer.sync(NODE, {key}, services, slices)
        out["service_added"] = time.perf_counter() - started
        assert by_service(slices[key])  # the slice names its Service

        restarted: Any = (
            NftSyncer(ns.nft, NODE, full_sync_period=3600)
            if nftables
            else Syncer(ns.iptables, NODE, full_sync_period=3600)
        )
        started = time.perf_counter()
        assert restarted.sync(NODE, set(), services, slices).full
        out["full_again"] = time.perf_counter() - started
    finally:
        if ns is not None:
            ns.close()
        floor.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["nft", "legacy", "nftables"],
        help="nft, legacy: the iptables mode on that backend; nftables: the nftables mode",
    )
    args = parser.parse_args()
    print(
        "| mode (backend) | Services | restore lines | floor: plain restore | full sync "
        "| full / floor "
        "| one endpoint change (median, max of 20) | of which deciding (median) "
        "| one Service added | full sync again (restart, hourly) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for backend in args.backends:
        for n in args.services:
            r = measure(backend, n)
            mode = "nftables" if backend == "nftables" else f"iptables ({backend})"
            print(
                f"| {mode} | {n:,} | {int(r['lines']):,} | {r['floor']:.2f} s "
                f"| {r['full']:.2f} s | {r['full'] / r['floor']:.2f}x "
                f"| {r['change_median'] * 1000:.0f} ms, "
                f"{r['change_max'] * 1000:.0f} ms | {r['decide_median'] * 1000:.1f} ms "
                f"| {r['service_added'] * 1000:.0f} ms | {r['full_again']:.2f} s |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
