"""`skiff loop`: slow motion, pause and step for every control loop.

    skiff loop                       show the loop control
    skiff loop slow 2s [--only replicaset]
    skiff loop pause [--only replicaset]
    skiff loop step                  let exactly one held action through; print it
    skiff loop resume                back to full speed, for every loop

It writes `kube-system/skiff-loop-control` (client/loopcontrol.py), which
every component watches. Paused components keep their caches and leases.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from client import errors
from client.config import ConfigError, load_config
from client.loopcontrol import NAME, NAMESPACE, control_body, parse_duration
from client.rest import Client

STEP_TIMEOUT = 30.0


async def _read(client: Client) -> dict[str, Any] | None:
    try:
        return await client.get("v1", "ConfigMap", NAMESPACE, NAME)
    except errors.NotFound:
        return None


async def _write(client: Client, change: dict[str, str]) -> dict[str, Any]:
    """Merge `change` into the control under its resourceVersion (retried on conflict)."""
    while True:
        cm = await _read(client)
        if cm is None:
            data = {"mode": "run", "slow": "0s", "only": "", "steps": "0", "granted": "0"}
            data.update(change)
            try:
                return await client.create(control_body(data))
            except errors.AlreadyExists:
                continue
        cm.setdefault("data", {}).update(change)
        try:
            return await client.update(cm)
        except errors.Conflict:
            continue


def show(cm: dict[str, Any] | None) -> str:
    data = (cm or {}).get("data") or {}
    mode = data.get("mode", "run")
    slow = data.get("slow", "0s")
    only = data.get("only") or "every loop"
    line = f"mode: {mode}, slow: {slow}, applies to: {only}"
    if data.get("lastStep"):
        line += f"\nlast step: {data['lastStep']}"
    return line


async def run(args: argparse.Namespace) -> int:
    client = Client(load_config(args.kubeconfig), user_agent="skiff-loop")
    try:
        if args.command == "show":
            print(show(await _read(client)))
        elif args.command == "slow":
            if parse_duration(args.value) <= 0 and args.value.strip() not in ("0", "0s"):
                raise ValueError(f"not a duration: {args.value!r} (e.g. 2s, 500ms)")
            print(show(await _write(client, {"slow": args.value, "only": args.only})))
        elif args.command == "pause":
            cm = await _read(client)
            steps = ((cm or {}).get("data") or {}).get("steps", "0")
            # Steps asked for before the pause do not carry over into it.
            change = {"mode": "pause", "only": args.only, "granted": steps}
            print(show(await _write(client, change)))
        elif args.command == "resume":
            print(show(await _write(client, {"mode": "run", "slow": "0s", "only": ""})))
        elif args.command == "step":
            return await _step(client)
    finally:
        await client.close()
    return 0


async def _step(client: Client) -> int:
    cm = await _read(client)
    data = (cm or {}).get("data") or {}
    if data.get("mode") != "pause":
        print("skiff loop: not paused (skiff loop pause first)", file=sys.stderr)
        return 1
    want = max(int(data.get("steps") or 0), int(data.get("granted") or 0)) + 1
    await _write(client, {"steps": str(want)})
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        data = ((await _read(client)) or {}).get("data") or {}
        if int(data.get("granted") or 0) >= want:
            print(data.get("lastStep", ""))
            return 0
        await asyncio.sleep(0.2)
    print(
        f"skiff loop: no loop took the step within {STEP_TIMEOUT:g}s "
        "(nothing is waiting to act); it stays allowed",
        file=sys.stderr,
    )
    return 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skiff loop", description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", default="show",
                   choices=["show", "slow", "pause", "step", "resume"])  # fmt: skip
    p.add_argument("value", nargs="?", default="", help="for slow: a delay such as 2s")
    p.add_argument("--only", default="", help="components or controllers, comma-separated")
    p.add_argument("--kubeconfig", default=None)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "slow" and not args.value:
        print("skiff loop slow: how slow? e.g. skiff loop slow 2s", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except (ConfigError, ValueError, errors.ApiError) as e:
        print(f"skiff loop: {e}", file=sys.stderr)
        return 1
