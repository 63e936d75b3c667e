"""Pod networking inside a throwaway "node" network namespace (never the host's).

The node is `ip netns add`-ed by the test and deleted afterwards; everything
runs in a script under `ip netns exec`, so the bridge, veths and pod
namespaces live inside it, and its pod namespace mounts vanish with the script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2"
)

SCENARIO = r"""
import json, os, socket, subprocess, sys, threading
from pathlib import Path
from pyroute2 import IPRoute
from runtime.network.netns import create_netns, in_netns, remove_netns
from runtime.network.pod_network import PodNetwork, PodNetworkConfig, host_veth_name

tmp = Path(sys.argv[1])
net = PodNetwork(PodNetworkConfig(pod_cidr="10.244.7.0/24", state_dir=tmp / "ipam"))
out = {}
a, b = tmp / "ns-a", tmp / "ns-b"
create_netns(a); create_netns(b)
addr_a, addr_b = net.setup("pod-a", a), net.setup("pod-b", b)
out["a"], out["b"], out["gateway"] = addr_a.ip, addr_b.ip, addr_a.gateway
out["again"] = net.setup("pod-a", a).ip  # idempotent: same address

def serve():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr_b.ip, 8080)); s.listen(1)
    (tmp / "listening").write_text("yes")  # the client waits for this, not for a timer
    conn, _ = s.accept(); conn.sendall(b"hello from b"); conn.close(); s.close()

def wait_listening():
    import time
    for _ in range(200):
        if (tmp / "listening").exists():
            (tmp / "listening").unlink(); return
        time.sleep(0.05)
    raise SystemExit("server never listened")

def client():
    c = socket.create_connection((addr_b.ip, 8080), timeout=5)
    data = c.recv(100); c.close()
    Path(tmp / "reply").write_bytes(data)

def ping_gateway():
    r = subprocess.run(["busybox", "ping", "-c1", "-W2", addr_a.gateway], capture_output=True)
    Path(tmp / "ping").write_text(str(r.returncode))

server = os.fork()
if server == 0:
    in_netns(b, serve); os._exit(0)
import time
wait_listening()
in_netns(a, client)
os.waitpid(server, 0)
in_netns(a, ping_gateway)
out["reply"] = (tmp / "reply").read_text()

# hostPort: the node's port 30080 reaches pod b's 8080 (DNAT in SKIFF-HOSTPORTS).
from runtime.network.hostport import PortMapping, add_host_ports, remove_host_ports
add_host_ports("pod-b", addr_b.ip, [PortMapping(30080, 8080)])
server = os.fork()
if server == 0:
    in_netns(b, serve); os._exit(0)
wait_listening()
c = socket.create_connection((addr_a.gateway, 30080), timeout=5)
out["via_hostport"] = c.recv(100).decode(); c.close()
os.waitpid(server, 0)
remove_host_ports("pod-b")
rules = subprocess.run(["iptables", "-t", "nat", "-S", "SKIFF-HOSTPORTS"],
                       capture_output=True, text=True).stdout
out["hostport_rules_left"] = [r for r in rules.splitlines() if "pod-b" in r]
out["ping_gateway"] = (tmp / "ping").read_text()
net.teardown("pod-a"); net.teardown("pod-b"); net.teardown("pod-b")
with IPRoute() as ip:
    out["veths_left"] = [n for n in ("pod-a", "pod-b") if ip.link_lookup(ifname=host_veth_name(n))]
out["allocations_left"] = net.ipam.allocations()
remove_netns(a); remove_netns(b)
out["netns_left"] = [p.name for p in (a, b) if p.exists()]
print(json.dumps(out))
"""


@pytest.fixture
def node() -> Iterator[str]:
    name = f"skifftest-node-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_two_pods_reach_each_other_and_teardown_leaves_nothing(node: str, tmp_path: Path) -> None:
    result = subprocess.run(
        ["ip", "netns", "exec", node, sys.executable, "-c", SCENARIO, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["gateway"] == "10.244.7.1"
    assert {out["a"], out["b"]} == {"10.244.7.2", "10.244.7.3"}
    assert out["again"] == out["a"]
    assert out["reply"] == "hello from b"
    assert out["ping_gateway"] == "0"
    assert out["veths_left"] == [] and out["allocations_left"] == {} and out["netns_left"] == []
    assert out["via_hostport"] == "hello from b"
    assert out["hostport_rules_left"] == []


def test_ipam_never_gives_an_address_twice_and_survives_restart(tmp_path: Path) -> None:
    from runtime.network.ipam import AddressesExhausted, HostLocalIPAM

    ipam = HostLocalIPAM("10.244.9.0/29", tmp_path)
    got = {ipam.allocate(f"p{i}") for i in range(5)}  # .2 to .6; .1 is the gateway
    assert len(got) == 5
    with pytest.raises(AddressesExhausted):
        ipam.allocate("one-too-many")
    again = HostLocalIPAM("10.244.9.0/29", tmp_path)  # a restarted runtime
    assert again.allocate("p0") == ipam.allocate("p0")
    again.release("p3")
    assert str(again.allocate("new")) == str(sorted(got)[3])


def test_pod_files_as_the_kubelet_writes_them(tmp_path: Path) -> None:
    from runtime.network.files import cluster_first, write_pod_files

    servers, searches, options = cluster_first("shop")
    paths = write_pod_files(
        tmp_path,
        hostname="web-0",
        ip="10.244.1.5",
        dns_servers=servers,
        searches=searches,
        options=options,
        host_aliases=[("10.0.0.9", ["db.local"])],
    )
    assert paths["resolv.conf"].read_text() == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n"
    )
    hosts = paths["hosts"].read_text()
    assert "10.244.1.5\tweb-0" in hosts and "10.0.0.9\tdb.local" in hosts
    assert paths["hostname"].read_text() == "web-0\n"


REUSE = r"""
import json, subprocess, sys
from pathlib import Path
from runtime.network.netns import create_netns, remove_netns
from runtime.network.pod_network import PodNetwork, PodNetworkConfig

tmp = Path(sys.argv[1])
net = PodNetwork(PodNetworkConfig(pod_cidr="10.244.7.0/24", state_dir=tmp / "ipam"))
bridge = net.config.bridge

def ping(address):
    done = subprocess.run(["busybox", "ping", "-c1", "-W2", address], capture_output=True)
    return done.returncode

def neighbour(address):
    return subprocess.run(["ip", "neigh", "show", "to", address, "dev", bridge],
                          capture_output=True, text=True).stdout.strip()

out = {}
stay, old, new = tmp / "ns-stay", tmp / "ns-old", tmp / "ns-new"
create_netns(stay); create_netns(old); create_netns(new)
try:
    net.setup("pod-stay", stay)  # the bridge keeps a port up: its entries are kept
    # A bridge takes its ports' lowest MAC unless given one, and a new MAC drops every
    # neighbour entry: fixed here, as it is on a node whose old pod was not the lowest.
    mac = Path(f"/sys/class/net/{bridge}/address").read_text().strip()
    subprocess.run(["ip", "link", "set", bridge, "address", mac], check=True)
    address = net.setup("pod-old", old).ip
    out["ping_old"] = ping(address)  # the node learns the old pod's MAC
    out["neighbour_old"] = neighbour(address)
    net.teardown("pod-old")
    out["same_address"] = net.setup("pod-new", new).ip == address
    out["neighbour_new"] = neighbour(address)
    out["ping_new"] = ping(address)
finally:
    net.teardown("pod-old"); net.teardown("pod-new"); net.teardown("pod-stay")
    remove_netns(old); remove_netns(new); remove_netns(stay)
print(json.dumps(out))
"""


def test_a_reused_address_reaches_the_new_pod_at_once(node: str, tmp_path: Path) -> None:
    """A pod's address freed and given to the next pod: the node must not keep sending
    to the old pod's MAC (its neighbour entry lives on the bridge, which stays), or the
    kubelet's probes of the new pod go nowhere until that entry expires (~50 s)."""
    result = subprocess.run(
        ["ip", "netns", "exec", node, sys.executable, "-c", REUSE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ping_old"] == 0 and "lladdr" in out["neighbour_old"], out
    assert out["same_address"], out
    old_mac = out["neighbour_old"].split("lladdr")[1].split()[0]
    assert old_mac not in out["neighbour_new"], out
    assert out["ping_new"] == 0, out
