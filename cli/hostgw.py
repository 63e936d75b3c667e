"""`python -m cli.hostgw`: routes to the other nodes' pod CIDRs via their addresses.

Pod traffic between nodes is routed "host-gw" (flannel's name for it): on each
node, one route per other node, `<its spec.podCIDR> via <its InternalIP>`.
That works wherever the nodes share one L2 network, the lab's bridge or VMs on
one subnet. The runtime gives pods addresses from this node's CIDR and the
kubelet passes that CIDR on; nobody else adds the routes between nodes, so
this small agent does, one per node, as flanneld does.

The routes it owns carry protocol number 77 (`ip route show proto 77`), so it
removes only its own when a node goes, and leaves every other route alone.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import subprocess
import sys
from typing import Any

from client.config import load_config
from client.informer import Informer
from client.rest import Client
from client.run import run_until_signalled

log = logging.getLogger("skiff.hostgw")
PROTO = "77"


def desired_routes(nodes: list[dict[str, Any]], self_name: str) -> dict[str, str]:
    """Pod CIDR -> gateway for every other node that has both. Pure."""
    routes: dict[str, str] = {}
    for node in nodes:
        if node["metadata"]["name"] == self_name:
            continue
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        ip = next(
            (
                a.get("address", "")
                for a in (node.get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            "",
        )
        if not cidr or not ip:
            continue
        try:
            ipaddress.ip_network(cidr)
            ipaddress.ip_address(ip)
        except ValueError:
            continue
        routes[cidr] = ip
    return routes


def decide(
    desired: dict[str, str], current: dict[str, str], local: list[str]
) -> tuple[dict[str, str], list[str]]:
    """(routes to add or change, CIDRs to remove). Pure.

    Only gateways on a subnet this node is attached to (`local`) can be used:
    host-gw needs one L2 network. Other nodes (simulated ones, or nodes
    elsewhere) get no route, and none is removed for them.
    """
    nets = [ipaddress.ip_interface(i).network for i in local]
    usable = {
        c: gw for c, gw in desired.items() if any(ipaddress.ip_address(gw) in n for n in nets)
    }
    change = {c: gw for c, gw in usable.items() if current.get(c) != gw}
    remove = sorted(c for c in current if c not in usable)
    return change, remove


def local_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    return [
        w[3]
        for w in (line.split() for line in out.stdout.splitlines())
        if len(w) > 3 and w[1] != "lo"
    ]


def current_routes() -> dict[str, str]:
    out = subprocess.run(
        ["ip", "-4", "route", "show", "proto", PROTO], capture_output=True, text=True
    ).stdout
    routes = {}
    for line in out.splitlines():
        words = line.split()
        if "via" in words:
            routes[words[0]] = words[words.index("via") + 1]
    return routes


def apply(change: dict[str, str], remove: list[str]) -> None:
    for cidr, gw in change.items():
        r = subprocess.run(
            ["ip", "route", "replace", cidr, "via", gw, "proto", PROTO],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            log.warning("route %s via %s: %s", cidr, gw, r.stderr.strip())
        else:
            log.info("route %s via %s", cidr, gw)
    for cidr in remove:
        subprocess.run(["ip", "route", "delete", cidr, "proto", PROTO], capture_output=True)
        log.info("route %s removed", cidr)


async def run(client: Client, node_name: str) -> None:
    nodes = Informer(client, "v1", "Node")
    changed = asyncio.Event()
    nodes.add_handlers(
        on_add=lambda _o: changed.set(),
        on_update=lambda _o, _n: changed.set(),
        on_delete=lambda _o: changed.set(),
    )
    nodes.start()
    try:
        await nodes.wait_for_sync()
        while True:
            changed.clear()
            change, remove = decide(
                desired_routes(nodes.store.list(), node_name), current_routes(), local_addresses()
            )
            if change or remove:
                apply(change, remove)
            try:  # a resync now and then puts back a route someone removed
                await asyncio.wait_for(changed.wait(), timeout=30)
            except TimeoutError:
                pass
    finally:
        await nodes.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cli.hostgw", description=__doc__.split("\n")[0])
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--node-name", required=True)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    client = Client(load_config(a.kubeconfig), user_agent="skiff-hostgw")

    async def work() -> None:
        try:
            await run(client, a.node_name)
        finally:
            await client.close()

    asyncio.run(run_until_signalled(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
