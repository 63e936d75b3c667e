"""The lab's network: namespaces joined by a bridge that has no way out.

    lab namespace  skiff-lab-<id>      bridge lab0 (no address, no route anywhere)
        │ veth n1 ─── eth0  node namespace skiff-<id>-1   172.30.0.11/24
        │ veth n2 ─── eth0  node namespace skiff-<id>-2   172.30.0.12/24
        │ ...

The bridge itself lives in a namespace of its own, so the host's network is
never touched: no interface, route or rule is added to it. No namespace gets a
default route, so nothing in the lab can reach beyond the bridge. Deleting the
namespaces (`remove`) removes every veth, bridge, route and iptables chain in
them; the kernel does that, whatever a component left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
LAB_SUBNET = "172.30.0.0/24"  # inside the lab's namespaces only; never routed out
FIRST_HOST = 11  # node k gets .(10+k)
T = TypeVar("T")


class NetError(Exception):
    """A step of building the lab's network failed; the message says which."""


def _ip(*args: str) -> str:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def node_address(index: int, subnet: str = LAB_SUBNET) -> str:
    """The lab address of node `index` (1-based). Pure."""
    net = ipaddress.ip_network(subnet)
    return str(net.network_address + FIRST_HOST - 1 + index)


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def create_lab(labns: str) -> None:
    """The lab's own namespace with its bridge, up, and no address."""
    _ip("netns", "add", labns)
    _ip("-n", labns, "link", "set", "lo", "up")
    _ip("-n", labns, "link", "add", "lab0", "type", "bridge")
    _ip("-n", labns, "link", "set", "lab0", "up")


def add_node(labns: str, nodens: str, port: str, address: str, prefix: int = 24) -> None:
    """A node namespace plugged into the lab bridge with `address`.

    The veth is created inside the lab namespace and its peer moved straight
    into the node's, so no name ever appears in the host's namespace.
    """
    _ip("netns", "add", nodens)
    _ip("-n", nodens, "link", "set", "lo", "up")
    _ip("-n", labns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", nodens)
    _ip("-n", labns, "link", "set", port, "master", "lab0", "up")
    _ip("-n", nodens, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
    _ip("-n", nodens, "link", "set", "eth0", "up")
    # A node forwards its pods' traffic to the other nodes (host-gw), as a
    # Kubernetes node must; this is the node namespace's own setting.
    in_netns(nodens, lambda: Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n"))


def remove(name: str) -> None:
    if exists(name):
        _ip("netns", "delete", name)


def _setns(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread that joined the namespace `name` (setns is per thread)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            _setns(netns_path(name))
            # /proc/sys/net shows the namespace of the thread that opens it.
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run, name=f"netns {name}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def preexec_in(name: str) -> Callable[[], None]:
    """A Popen preexec_fn: the child joins namespace `name` before it execs.

    Only the network namespace changes (not `ip netns exec`, which remounts
    /sys and would hide the cgroup tree the runtime needs).
    """
    fd = os.open(netns_path(name), os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(126)

    preexec.fd = fd  # type: ignore[attr-defined]  # closed by the caller after Popen
    return preexec


def close_preexec(preexec: Callable[[], None]) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.close(preexec.fd)  # type: ignore[attr-defined]


def nsenter(name: str) -> list[str]:
    """The argv prefix that runs a command in namespace `name`'s network only."""
    return ["nsenter", f"--net={netns_path(name)}", "--"]
