"""A pod's network: a veth pair from the node bridge into the pod's namespace.

Everything acts on the network namespace of the calling process, the node's:
in a lab, a node is itself a network namespace and the runtime runs inside
it. The bridge gets the CIDR's first address and is every pod's gateway.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
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

    def ensure_bridge(self, ip: IPRoute) -> int:
        """The node bridge with the gateway address, made once: pods set up at the
        same time (worker threads of the daemon) must not both try to make it."""
        with self._bridge_lock:
            return self._ensure_bridge(ip)

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
        address = str(self.ipam.allocate(sandbox_id))
        gateway = str(self.ipam.gateway)
        host_name = host_veth_name(sandbox_id)
        peer = "p" + host_name[4:]
        with IPRoute() as ip:
            bridge = self.ensure_bridge(ip)
            if not ip.link_lookup(ifname=host_name):
                ip.link("add", ifname=host_name, kind="veth", peer=peer, mtu=self.config.mtu)
            host = ip.link_lookup(ifname=host_name)[0]
            ip.link("set", index=host, master=bridge, state="up")
            # Hairpin: a pod reaching itself through its Service comes back out of
            # the port it came in by (kubelet's --hairpin-mode=hairpin-veth).
            ip.link("set", index=host, kind="bridge_slave", mode=1)
            peer_found = ip.link_lookup(ifname=peer)
            if peer_found:
                fd = os.open(netns_path, os.O_RDONLY)
                try:
                    ip.link("set", index=peer_found[0], net_ns_fd=fd)
                finally:
                    os.close(fd)

        # Inside the pod: rename, address, up, default route (idempotent: setup may rerun).
        links = run_in_netns(netns_path, ["ip", "-o", "link", "show"])
        if f" {peer}:" in links or f" {peer}@" in links:
            run_in_netns(netns_path, ["ip", "link", "set", peer, "name", "eth0"])
        if f"{address}/" not in run_in_netns(netns_path, ["ip", "-o", "addr", "show", "eth0"]):
            run_in_netns(
                netns_path, ["ip", "addr", "add", f"{address}/{self.prefix}", "dev", "eth0"]
            )
        run_in_netns(netns_path, ["ip", "link", "set", "eth0", "up"])
        run_in_netns(netns_path, ["ip", "link", "set", "lo", "up"])
        if "default" not in run_in_netns(netns_path, ["ip", "route", "show"]):
            run_in_netns(netns_path, ["ip", "route", "add", "default", "via", gateway])
        return PodAddress(address, self.prefix, gateway)

    def teardown(self, sandbox_id: str) -> None:
        """Remove the veth (its peer goes with it) and free the address; idempotent."""
        with IPRoute() as ip:
            for index in ip.link_lookup(ifname=host_veth_name(sandbox_id)):
                ip.link("del", index=index)
        self.ipam.release(sandbox_id)
