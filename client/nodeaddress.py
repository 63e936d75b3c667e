"""Which address a node is known by, when nobody said (`--node-ip` unset).

The kubelet registers it as the Node's InternalIP and `skiff up` checks and
prints it, so both ask the same question the same way: the default route's
source address, else (an offline machine with no default route) the first
global address, else loopback — as the kubelet chooses.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any


def ip_json(*args: str) -> list[dict[str, Any]]:
    """`ip -j ARGS` parsed; [] when `ip` is missing, hangs or says nothing."""
    try:
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    try:
        return list(json.loads(out.stdout or "[]"))
    except ValueError:
        return []


def local_addresses() -> set[str]:
    return {a["local"] for link in ip_json("addr", "show") for a in link.get("addr_info") or []}


def default_node_ip() -> tuple[str, str]:
    """(address, how it was chosen), in words a person reads in the log."""
    for route in ip_json("-4", "route", "show", "default"):
        if route.get("prefsrc"):
            return route["prefsrc"], f"the default route's source address ({route['dev']})"
        for link in ip_json("-4", "addr", "show", "dev", route.get("dev", "")):
            for a in link.get("addr_info") or []:
                if a.get("scope") == "global":
                    return a["local"], f"the address of the default route's device {route['dev']}"
    for link in ip_json("-4", "addr", "show", "scope", "global"):
        for a in link.get("addr_info") or []:
            return a["local"], f"the first global address ({link['ifname']}): no default route"
    return "127.0.0.1", "loopback: this machine has no default route and no global address"
