"""The node's name and address: explicit, or chosen and then checked against the cluster.

On VirtualBox/Vagrant every VM's default-route address is the same NAT address
(10.0.2.15), and cloned VMs share a hostname: the most common lab failures,
where two machines then fight over one Node. skiff picks the default route's
address only when `--node-ip` is not given, checks that the address belongs to
this machine, and refuses a name or an address another machine's Node already
holds, saying how to pick another (`decide_conflicts` is pure).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Any

from client import nodeaddress

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


local_addresses = nodeaddress.local_addresses
default_node_ip = nodeaddress.default_node_ip


def default_node_name() -> str:
    return socket.gethostname().lower()


def machine_id() -> str:
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        return ""


def check_flags(node_name: str, node_ip: str, addresses: set[str]) -> str:
    """Pure: "" when the name and address can be used on this machine, else why not."""
    if len(node_name) > 253 or not NAME.match(node_name):
        return (
            f"node name {node_name!r} is not a valid DNS subdomain (lower-case letters, digits, "
            "'-' and '.'): pick another with --node-name"
        )
    try:
        ipaddress.ip_address(node_ip)
    except ValueError:
        return f"--node-ip {node_ip!r} is not an IP address"
    if node_ip not in addresses:
        return (
            f"--node-ip {node_ip} is not an address of this machine "
            f"(it has {', '.join(sorted(addresses)) or 'none'})"
        )
    return ""


def internal_ip(node: dict[str, Any]) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return str(a.get("address"))
    return ""


def decide_conflicts(
    nodes: list[dict[str, Any]], *, node_name: str, node_ip: str, machine: str
) -> str:
    """Pure: "" when no other machine's Node has our name or address, else the refusal."""
    for node in nodes:
        name = node["metadata"]["name"]
        info = (node.get("status") or {}).get("nodeInfo") or {}
        theirs = info.get("machineID") or ""
        if name == node_name and theirs and machine and theirs != machine:
            return (
                f"node name {node_name!r} is already held by another machine "
                f"(machine-id {theirs[:12]}…, address {internal_ip(node) or 'unknown'}); "
                "cloned VMs share a hostname: pick another with --node-name NAME "
                "(or give the clone a new hostname and /etc/machine-id)"
            )
        if name != node_name and node_ip and internal_ip(node) == node_ip:
            return (
                f"address {node_ip} is already the InternalIP of node {name!r}: on "
                "VirtualBox/Vagrant every VM's NAT address (10.0.2.15) is the same; pass "
                "--node-ip with this machine's address on the network the nodes share"
            )
    return ""
