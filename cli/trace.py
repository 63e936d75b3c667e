"""`skiff trace`: the reconcile trace of every loop, read through the API.

    skiff trace [-w] [--object kind/name] [--component c] [-n ns] [-o json]

Each component keeps its last records in `kube-system/skiff-trace-<component>`
and its sealed shards `skiff-trace-<k>-<component>` (client/trace.py); this
merges them oldest first and, with `-w`, follows the watch on those
ConfigMaps. One record reads:

    04:01:02.123 controller-manager/replicaset ReplicaSet default/web-7c9f  done 12.5ms
        saw 1 active pods; wanted 3 replicas  (controllers.replicaset:decide)
        CreatePods(count=2)
          POST v1 Pod default/web-7c9f-abcde
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from client.config import ConfigError, load_config
from client.rest import Client
from client.trace import TraceReader, matches


def parse_object(text: str) -> tuple[str, str]:
    """`deployment/web` -> ("Deployment", "web"); `pod/x` -> ("Pod", "x")."""
    kind, sep, name = text.partition("/")
    if not sep or not kind or not name:
        raise ValueError(f"--object wants kind/name, e.g. deployment/web, not {text!r}")
    aliases = {
        "deploy": "Deployment",
        "deployment": "Deployment",
        "deployments": "Deployment",
        "rs": "ReplicaSet",
        "replicaset": "ReplicaSet",
        "replicasets": "ReplicaSet",
        "po": "Pod",
        "pod": "Pod",
        "pods": "Pod",
        "svc": "Service",
        "service": "Service",
        "services": "Service",
        "no": "Node",
        "node": "Node",
        "nodes": "Node",
        "ns": "Namespace",
        "namespace": "Namespace",
    }
    return aliases.get(kind.lower(), kind), name


def render(record: dict[str, Any]) -> str:
    clock = record.get("time", "")[11:23]
    who = f"{record.get('component')}/{record.get('controller')}"
    where = "/".join(p for p in (record.get("namespace"), record.get("name")) if p)
    lines = [
        f"{clock} {who} {record.get('kind')} {where}  {record.get('outcome')} "
        f"{record.get('durationMs')}ms"
    ]
    saw = "; ".join(
        p
        for p in (
            f"saw {record['observed']}" if record.get("observed") else "",
            f"wanted {record['wanted']}" if record.get("wanted") else "",
        )
        if p
    )
    lines.append(f"    {saw}  ({record.get('decide')})" if saw else f"    ({record.get('decide')})")
    for action in record.get("actions") or []:
        lines.append(f"    {action.get('action')}")
        lines += [f"      {call}" for call in action.get("calls") or []]
        if action.get("note"):
            lines.append(f"      ({action['note']})")
        if action.get("error"):
            lines.append(f"      error: {action['error']}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    client = Client(load_config(args.kubeconfig), user_agent="skiff-trace")
    kind, name = parse_object(args.object) if args.object else ("", "")
    reader = TraceReader(client)

    def show(record: dict[str, Any]) -> None:
        if matches(
            record, kind=kind, name=name, component=args.component, namespace=args.namespace
        ):
            print(json.dumps(record) if args.output == "json" else render(record), flush=True)

    try:
        records, rv = await reader.snapshot()
        for record in records:
            show(record)
        if args.watch:
            async for record in reader.follow(rv):
                show(record)
    finally:
        await client.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skiff trace", description=__doc__.split("\n\n")[0])
    p.add_argument("-w", "--watch", action="store_true", help="keep following new records")
    p.add_argument("--object", default="", help="only this object, kind/name (deployment/web)")
    p.add_argument("--component", default="", help="only this component or controller")
    p.add_argument("-n", "--namespace", default="", help="only objects in this namespace")
    p.add_argument("-o", "--output", default="text", choices=["text", "json"])
    p.add_argument("--kubeconfig", default=None)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (ConfigError, ValueError) as e:
        print(f"skiff trace: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
