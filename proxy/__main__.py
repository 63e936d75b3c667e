"""`python -m proxy` (what `skiff proxy` runs): this node's Services in iptables or nftables.

One per node, no leader election (every node programs its own kernel), as
kube-proxy. Flags keep kube-proxy's names where they mean the same thing.
Starting in one mode removes the other mode's rules, and `--cleanup` removes
both, as kube-proxy does.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import sys

from client.config import load_config
from client.controller import Context
from client.events import EventRecorder
from client.loopcontrol import LoopControl
from client.rest import Client
from client.run import component_main, run_until_signalled
from client.trace import Tracer

from . import nft_apply
from .apply import ApplyError, Iptables, cleanup, detect_backend, ensure_sysctls
from .metrics import HTTPServer, ProxyMetrics, healthz_route
from .rules import Node
from .sync import AnySyncer, ProxyController, ProxyInformers, Settings, Syncer

log = logging.getLogger("skiff.proxy")


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    return host, int(port)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff proxy", description=__doc__)
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument(
        "--hostname-override",
        default="",
        help="this node's name, as the kubelet registered it (default: the hostname)",
    )
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="the pods' addresses")
    p.add_argument(
        "--proxy-mode",
        default="iptables",
        choices=["iptables", "nftables"],
        help="nftables: one table `ip skiff` with verdict maps (needs the nft command)",
    )
    p.add_argument(
        "--iptables-backend",
        default="auto",
        choices=["auto", "nft", "legacy"],
        help="auto: the one that already holds the node's rules, as kube-proxy chooses",
    )
    p.add_argument("--iptables-min-sync-period", type=float, default=1.0, metavar="SECONDS")
    p.add_argument("--iptables-sync-period", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--full-sync-period", type=float, default=3600.0, metavar="SECONDS")
    p.add_argument("--healthz-bind-address", default="0.0.0.0:10256")
    p.add_argument("--metrics-bind-address", default="127.0.0.1:10249")
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="remove every rule and chain the proxy made, then exit",
    )
    p.add_argument(
        "-v", "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return p.parse_args(argv)


def cleanup_iptables(args: argparse.Namespace) -> bool:
    """The iptables mode's chains, if the iptables tools are there; whether it ran."""
    if not shutil.which("iptables-save"):
        return False
    backend = args.iptables_backend if args.iptables_backend != "auto" else detect_backend()
    cleanup(Iptables(backend=backend))
    return True


def cleanup_nftables() -> None:
    """The nftables mode's table, if nft is there."""
    if shutil.which("nft"):
        nft_apply.cleanup(nft_apply.Nft())


def make_syncer(args: argparse.Namespace, node_name: str) -> AnySyncer:
    """The syncer of the mode asked for, after removing the other mode's rules."""
    node = Node(node_name, (), args.cluster_cidr)
    if args.proxy_mode == "nftables":
        if not shutil.which("nft"):
            raise SystemExit("skiff proxy: --proxy-mode nftables needs nft (apt install nftables)")
        try:
            cleanup_iptables(args)
        except ApplyError as e:  # not fatal: those rules stay, ours still work
            log.warning("could not remove the iptables mode's rules: %s", e)
        log.info("node %s, nftables mode (table ip skiff)", node_name)
        return nft_apply.NftSyncer(nft_apply.Nft(), node, args.full_sync_period)
    try:
        cleanup_nftables()
    except ApplyError as e:
        log.warning("could not remove the nftables mode's table: %s", e)
    backend = args.iptables_backend if args.iptables_backend != "auto" else detect_backend()
    log.info("node %s, iptables mode, backend %s", node_name, backend)
    return Syncer(Iptables(backend=backend), node, args.full_sync_period)


async def run(args: argparse.Namespace) -> None:
    node_name = args.hostname_override or socket.gethostname()
    syncer = make_syncer(args, node_name)
    for setting in ensure_sysctls():
        log.info("set %s", setting)
    client = Client(load_config(args.kubeconfig), user_agent="skiff-proxy")
    metrics = ProxyMetrics()
    settings = Settings(
        node_name=node_name,
        cluster_cidr=args.cluster_cidr,
        min_sync_period=args.iptables_min_sync_period,
        sync_period=args.iptables_sync_period,
        full_sync_period=args.full_sync_period,
    )
    servers = [
        HTTPServer(
            {"/healthz": healthz_route(metrics, settings.sync_period)},
            *_host_port(args.healthz_bind_address, 10256),
        ),
        HTTPServer(
            {
                "/metrics": lambda: (200, "text/plain; version=0.0.4", metrics.exposition()),
                "/healthz": healthz_route(metrics, settings.sync_period),
            },
            *_host_port(args.metrics_bind_address, 10249),
        ),
    ]

    async def work() -> None:
        informers = ProxyInformers(client)
        tracer = Tracer(client, f"kube-proxy-{node_name}")
        loop = LoopControl(client, f"kube-proxy-{node_name}")
        ctx = Context(
            client,
            informers,
            EventRecorder(client, "kube-proxy", node_name),
            tracer=tracer,
            loop=loop,
        )
        proxy = ProxyController(ctx, settings, None, metrics, syncer=syncer)
        for server in servers:
            await server.start()
        informers.start()
        tracer.start()
        loop.start()
        try:
            await proxy.run()
        finally:
            await tracer.stop()
            await loop.stop()
            await informers.stop()
            for server in servers:
                await server.stop()

    try:
        await run_until_signalled(work)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.cleanup:
        logging.basicConfig(level=args.log_level.upper())
        try:  # every mode's rules, whichever mode ran, as kube-proxy --cleanup
            cleanup_iptables(args)
            cleanup_nftables()
        except ApplyError as e:
            print(f"skiff proxy: {e}", file=sys.stderr)
            return 1
        return 0
    return component_main("skiff proxy", args, run)


if __name__ == "__main__":
    sys.exit(main())
