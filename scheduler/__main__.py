"""`python -m scheduler` (what `skiff scheduler` runs): puts pending pods on nodes.

Runs behind leader election on the Lease kube-system/kube-scheduler, so that
two schedulers can run and only one binds.
"""

from __future__ import annotations

import argparse
import socket
import sys
import uuid

from client.config import load_config
from client.leaderelection import LeaderElector
from client.rest import Client
from client.run import component_main, run_until_signalled

from .scheduler import Scheduler


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff scheduler", description=__doc__)
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument("--leader-elect", default="true", choices=["true", "false"])
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    p.add_argument(
        "-v", "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    client = Client(load_config(args.kubeconfig), user_agent="skiff-scheduler")

    async def lead() -> None:
        await Scheduler(client).run()

    elector = LeaderElector(
        client,
        namespace="kube-system",
        name="kube-scheduler",
        identity=f"{socket.gethostname()}_{uuid.uuid4()}",
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )
    try:
        await run_until_signalled(lead, elector=elector if args.leader_elect == "true" else None)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return component_main("skiff scheduler", args, run, fast_loop=True)


if __name__ == "__main__":
    sys.exit(main())
