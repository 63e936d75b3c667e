"""A pod's network: a veth pair from the node bridge into the pod's namespace.

Everything acts on the network namespace of the calling process, the node's:
in a lab, a node is itself a network namespace and the runtime runs inside
it. The bridge gets the CIDR's first address and is every pod's gateway.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

from .ipam import HostLocalIPAM
from .netns import run_in_netns


@dataclass(frozen=True)
class PodNetworkConfig:
    pod_cidr: str
    bridge: str = "skiff0"
    state_dir: Path = Path("/var/lib/skiff/network")
    mtu: int = 1500


@dataclass(frozen=True)
class PodAddress:
    ip: str
    prefix_len: int
    gateway: str
    interface: str = "eth0"


def host_veth_name(sandbox_id: str) -> str:
    """Deterministic and within the 15-character limit of interface names."""
    return "veth" + hashlib.sha256(sandbox_id.encode()).hexdigest()[:11]


class PodNetwork:
    def __init__(self, config: PodNetworkConfig) -> None:
        self.config = config
        self.ipam = HostLocalIPAM(config.pod_cidr, config.state_dir)
        self.prefix = ipaddress.ip_network(config.pod_cidr).prefixlen
        self._bridge_lock = threading.Lock()
        self._bridge_ready = False

    def ensure_bridge(self) -> None:
        """The node bridge with the gateway address, made (or checked) once: pods set up
        at the same time (worker threads of the daemon) must not both try to make it,
        and must not each pay for a look at it. A set-up that finds it gone calls
        `bridge_gone`, and the next one makes it again."""
        with self._bridge_lock:
            if not self._bridge_ready:
                with IPRoute() as ip:
                    self._ensure_bridge(ip)
                self._bridge_ready = True

    def bridge_gone(self) -> None:
        with self._bridge_lock:
            self._bridge_ready = False

    def _ensure_bridge(self, ip: IPRoute) -> int:
        found = ip.link_lookup(ifname=self.config.bridge)
        if found:
            index = found[0]
        else:
            ip.link("add", ifname=self.config.bridge, kind="bridge", mtu=self.config.mtu)
            index = ip.link_lookup(ifname=self.config.bridge)[0]
        gateway = str(self.ipam.gateway)
        if not any(a.get_attr("IFA_ADDRESS") == gateway for a in ip.get_addr(index=index)):
            ip.addr("add", index=index, address=gateway, prefixlen=self.prefix)
        ip.link("set", index=index, state="up")
        return index

    def setup(self, sandbox_id: str, netns_path: Path) -> PodAddress:
        """The veth pair, its pod end made straight inside the namespace as eth0, and
        the pod's address, routes and `lo`; idempotent, so a rerun finishes a set-up.

        Two `ip -batch` processes, one on the node's side and one in the pod's
        namespace (`nsenter`: the daemon does not fork, and a netlink socket belongs
        to the namespace it was made in), rather than a process per command or
        netlink calls from Python: 30 sandboxes set up at once by the daemon's
        threads spent most of their time in either (docs/benchmarks.md).
        """
        address = str(self.ipam.allocate(sandbox_id))
        gateway = str(self.ipam.gateway)
        host_name = host_veth_name(sandbox_id)
        peer = "p" + host_name[4:]
        mtu, bridge = self.config.mtu, self.config.bridge
        node_side = []
        if not _link_exists(host_name):
            node_side.append(
                f"link add {host_name} mtu {mtu} type veth peer name eth0 mtu {mtu}"
                f" netns {netns_path}"
            )
        elif _link_exists(peer):  # left on the node by an older set-up
            node_side.append(f"link set {peer} netns {netns_path} name eth0")
        node_side.append(f"link set {host_name} master {bridge} up")
        # The address may have been a pod's that was just removed: the node's neighbour
        # entry for it still names that pod's MAC, and would send the new pod's traffic
        # (the kubelet's probes) nowhere until it expires (up to ~50 s).
        node_side.append(f"neigh flush to {address} dev {bridge}")
        # Hairpin: a pod reaching itself through its Service comes back out of the port
        # it came in by (kubelet's --hairpin-mode=hairpin-veth).
        node_side.append(f"link set {host_name} type bridge_slave hairpin on")
        self.ensure_bridge()
        try:
            _ip_batch(node_side)
        except OSError:
            if _link_exists(bridge):
                raise
            self.bridge_gone()  # removed behind our back: make it again, once
            self.ensure_bridge()
            _ip_batch(node_side[-3:] if _link_exists(host_name) else node_side)
        # Inside the pod: address, up, default route ("replace": a rerun changes nothing).
        pod_side = (
            "link set lo up\n"
            f"addr replace {address}/{self.prefix} dev eth0\n"
            "link set eth0 up\n"
            f"route replace default via {gateway} dev eth0\n"
        )
        run_in_netns(netns_path, ["ip", "-batch", "-"], pod_side)
        return PodAddress(address, self.prefix, gateway)

    def teardown(self, sandbox_id: str) -> None:
        """Remove the veth (its peer goes with it) and free the address; idempotent."""
        with IPRoute() as ip:
            for index in ip.link_lookup(ifname=host_veth_name(sandbox_id)):
                ip.link("del", index=index)
        self.ipam.release(sandbox_id)


def _link_exists(name: str) -> bool:
    """In the calling thread's network namespace, the node's (no netlink, no process)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _ip_batch(commands: list[str]) -> None:
    done = subprocess.run(
        ["ip", "-batch", "-"], input="\n".join(commands) + "\n", capture_output=True, text=True
    )
    if done.returncode != 0:
        raise OSError(f"setting up the pod's veth failed: {done.stderr.strip()}")
