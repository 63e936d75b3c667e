"""The rendered ruleset loaded into a throwaway network namespace, and real connections through it.

The namespace is made by the test (`ip netns add`, no route out of it) and
deleted afterwards, which takes its iptables rules with it. Inside it a
veth interface holds the "pod" addresses 10.244.0.5-7 and the node address
192.168.50.2, and routes the service range, so a client in the namespace can
connect to ClusterIPs and NodePorts and be DNATed to servers listening on the
pod addresses. Every command runs through `nsenter --net=...`; every process
the test starts is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy import nft_apply, nft_rules
from proxy.apply import Iptables, cleanup, detect_backend, sync
from proxy.rules import JUMPS, Endpoint, Node, by_service, service_ports, svc_chain
from proxy.sync import service_key

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables-restore"),
    reason="needs root, iproute2 and iptables",
)

NODE = Node("node-a", ("192.168.50.2",), "10.244.0.0/16")
PODS = ("10.244.0.5", "10.244.0.6", "10.244.0.7")

SERVER = r"""
import socket, sys, threading
from pathlib import Path
socks = []
for ip in sys.argv[2:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, 8080)); s.listen(64); socks.append(s)
def serve(s):
    me = s.getsockname()[0].encode()
    while True:
        c, _ = s.accept(); c.sendall(me); c.close()
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
Path(sys.argv[1]).write_text("listening")
threading.Event().wait()
"""

CLIENT = r"""
import json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = {}
for _ in range(n):
    try:
        c = socket.create_connection((host, port), timeout=3)
        reply = c.recv(100).decode(); c.close()
    except OSError as e:
        reply = type(e).__name__
    seen[reply] = seen.get(reply, 0) + 1
print(json.dumps(seen))
"""


def canonical_nft(listing: str) -> str:
    """`nft list table` output with its blocks (chains, sets, maps) and map elements
    sorted: nft lists them in the order they were made, which differs between a
    table built by one transaction and one kept up to date by many; what the
    kernel does with them does not."""
    lines: list[str] = []
    for line in listing.splitlines():
        if lines and "elements = {" in lines[-1] and not lines[-1].rstrip().endswith("}"):
            lines[-1] += " " + line.strip()  # an element list, on one line
        elif line.strip():
            lines.append(line)
    close = lines.pop() if lines and lines[-1] == "}" else ""  # the table's
    blocks: list[list[str]] = [[]]
    for line in lines:
        if re.match(r"\t(chain|set|map) ", line):
            blocks.append([])
        match = re.match(r"(\s*elements = \{ )(.*) \}$", line)
        if match:
            items = sorted(i.strip() for i in match.group(2).split(","))
            line = match.group(1) + ", ".join(items) + " }"
        blocks[-1].append(line)
    head, *rest = blocks
    return "\n".join(line for block in [head, *sorted(rest)] for line in block) + "\n" + close


class Netns:
    """One test namespace, and the proxy mode (an iptables backend, or nftables) aimed at it."""

    def __init__(self, name: str, backend: str) -> None:
        self.name = name
        self.mode = backend
        self.enter = ["nsenter", f"--net=/run/netns/{name}"]
        self.iptables = Iptables(
            backend=backend if backend != "nftables" else "nft", prefix=tuple(self.enter)
        )
        self.tool = self.iptables.tool("iptables")
        self.nft = nft_apply.Nft(prefix=tuple(self.enter))
        self.syncer = nft_apply.NftSyncer(self.nft, NODE, 3600.0)
        self.last: set[tuple[str, str]] = set()

    def sync(self, services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> None:
        """One sync of the mode: a full iptables restore, or (after the first) a partial
        nftables transaction naming every Service that is or was there."""
        if self.mode != "nftables":
            sync(services, slices, NODE, self.iptables)
            return
        by_key = {service_key(s): s for s in services}
        self.syncer.sync(NODE, set(by_key) | self.last, by_key, by_service(slices))
        self.last = set(by_key)

    def restart(self) -> None:
        """A restarted proxy: its first sync is a full one over what the kernel holds
        (every sync of the iptables modes is one already)."""
        self.syncer = nft_apply.NftSyncer(self.nft, NODE, 3600.0)
        self.last = set()

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(
            [*self.enter, *argv], capture_output=True, text=True, check=False, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{argv}: {done.stderr}")
        return done.stdout

    def save(self) -> str:
        """iptables-save of both tables, without its timestamped comments, policies and counters."""
        lines = self.iptables.save().splitlines()
        return "\n".join(
            line.split()[0] if line.startswith(":") else line
            for line in lines
            if not line.startswith("#")
        )

    def connect(self, host: str, port: int, n: int = 1) -> dict[str, int]:
        out = self.run(sys.executable, "-c", CLIENT, host, str(port), str(n))
        return json.loads(out)


@pytest.fixture(params=["nft", "legacy"])
def netns(request: pytest.FixtureRequest) -> Iterator[Netns]:
    """A fresh network namespace, once per iptables backend the proxy may find on a node."""
    yield from _netns(request.param)


@pytest.fixture(params=["nft", "legacy", "nftables"])
def any_mode(request: pytest.FixtureRequest) -> Iterator[Netns]:
    """The same, and once more for the nftables mode."""
    yield from _netns(request.param)


@pytest.fixture
def nftables() -> Iterator[Netns]:
    yield from _netns("nftables")


def _netns(backend: str) -> Iterator[Netns]:
    tool = "nft" if backend == "nftables" else f"iptables-{backend}-restore"
    if not shutil.which(tool):
        pytest.skip(f"no {tool}")
    name = f"skiff-proxy-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ns = Netns(name, backend)
        ns.run("ip", "link", "set", "lo", "up")
        # A veth pair with both ends inside: an interface to hold the addresses
        # and to route the service range to (the dummy module is not everywhere).
        ns.run("ip", "link", "add", "node0", "type", "veth", "peer", "name", "node1")
        for ip in (*PODS, "192.168.50.2"):
            ns.run("ip", "addr", "add", f"{ip}/32", "dev", "node0")
        ns.run("ip", "link", "set", "node0", "up")
        ns.run("ip", "link", "set", "node1", "up")
        ns.run("ip", "route", "add", "10.96.0.0/12", "dev", "node0")  # the service range
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def servers(any_mode: Netns, tmp_path: Path) -> Iterator[None]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([*any_mode.enter, sys.executable, "-c", SERVER, str(ready), *PODS])
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None, "the test server exited"
            assert time.monotonic() < deadline, "the test server never listened"
            time.sleep(0.05)
        yield
    finally:
        proc.kill()
        proc.wait()


def service(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    ports = spec.pop("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": ip, "ports": ports, **spec},
    }


def endpoint_slice(name: str, ready: list[str], unready: list[str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "default",
            "name": name,
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            *({"addresses": [ip], "conditions": {"ready": True}} for ip in ready),
            *({"addresses": [ip], "conditions": {"ready": False}} for ip in unready or []),
        ],
    }


def test_ruleset_loads_beside_foreign_rules_and_stale_chains_go(netns: Netns) -> None:
    # Rules skiff does not own, made before the proxy's first sync.
    netns.run(netns.tool, "-w", "-t", "nat", "-N", "TEST-USER")
    netns.run(
        netns.tool,
        "-w",
        "-t",
        "nat",
        "-A",
        "TEST-USER",
        "-p",
        "tcp",
        "--dport",
        "9",
        "-j",
        "RETURN",
    )
    netns.run(netns.tool, "-w", "-t", "nat", "-A", "PREROUTING", "-j", "TEST-USER")
    netns.run(netns.tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")
    foreign = [
        "-A TEST-USER -p tcp -m tcp --dport 9 -j RETURN",
        "-A PREROUTING -j TEST-USER",
        "-A INPUT -p tcp -m tcp --dport 9999 -j ACCEPT",
    ]

    web = service("web", "10.96.0.50")
    two = [endpoint_slice("web", ["10.244.0.5", "10.244.0.6"])]
    sync([web], two, NODE, netns.iptables)
    first = netns.save()
    (sp,) = service_ports(web)
    assert f":{svc_chain(sp)}" in first.splitlines()
    to_endpoints = [
        line
        for line in first.splitlines()
        if line.startswith(f"-A {svc_chain(sp)}") and " -> " in line
    ]
    assert len(to_endpoints) == 2
    assert "--probability 0.5" in to_endpoints[0]
    assert sum("--to-destination 10.244.0." in line for line in first.splitlines()) == 2
    for rule in foreign:
        assert rule in first.splitlines()

    # A restarted proxy finds the backend that holds the rules, as kube-proxy's wrapper does.
    assert detect_backend(netns.enter) == netns.iptables.backend

    # Each jump into our chains exists exactly once, however many syncs.
    sync([web], two, NODE, netns.iptables)
    again = netns.save()
    assert again == first
    tables = {t.split("\n", 1)[0]: t for t in again.split("*")[1:]}  # "nat" -> its lines
    for table, chain, spec in JUMPS:
        rule = f"-A {chain} {spec}"
        assert tables[table].splitlines().count(rule) == 1, rule

    # One endpoint goes: its chain and every rule naming it go too; foreign rules stay.
    sync([web], [endpoint_slice("web", ["10.244.0.6"])], NODE, netns.iptables)
    after = netns.save()
    assert "10.244.0.5" not in after
    assert sum(line.startswith(":SKIFF-SEP-") for line in after.splitlines()) == 1
    for rule in foreign:
        assert rule in after.splitlines()

    # The Service goes: nothing of it is left, and a restart's first sync converges.
    sync([], [], NODE, netns.iptables)
    empty = netns.save()
    assert "default/web" not in empty and ":SKIFF-SVC-" not in empty and ":SKIFF-SEP-" not in empty
    for rule in foreign:
        assert rule in empty.splitlines()

    cleanup(netns.iptables)
    gone = netns.save()
    assert "SKIFF-" not in gone
    for rule in foreign:
        assert rule in gone.splitlines()


def test_connections_follow_the_rules(any_mode: Netns, servers: None) -> None:
    netns = any_mode
    services = [
        service(
            "web",
            "10.96.0.50",
            type="NodePort",
            ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
        ),
        service("empty", "10.96.0.51"),
        service("sticky", "10.96.0.52", sessionAffinity="ClientIP"),
    ]
    slices = [
        # 10.244.0.7 has a server too, but is not ready: it must never be chosen.
        endpoint_slice("web", ["10.244.0.5", "10.244.0.6"], unready=["10.244.0.7"]),
        endpoint_slice("empty", [], unready=["10.244.0.7"]),
        endpoint_slice("sticky", ["10.244.0.5", "10.244.0.6"]),
    ]
    netns.sync(services, slices)

    seen = netns.connect("10.96.0.50", 80, n=200)
    assert set(seen) == {"10.244.0.5", "10.244.0.6"}, seen  # both ready ones, nothing else

    # No ready endpoint: refused at once (ICMP port unreachable), not a hang.
    assert netns.connect("10.96.0.51", 80, n=3) == {"ConnectionRefusedError": 3}

    # The NodePort on the node's address reaches the same endpoints.
    seen = netns.connect("192.168.50.2", 30080, n=100)
    assert set(seen) == {"10.244.0.5", "10.244.0.6"}, seen

    # ClientIP affinity: one client keeps its endpoint, also across full syncs (a
    # restarted proxy's, the hourly one), as with kube-proxy: five in a row would
    # all pick the same endpoint by chance once in 32 runs.
    seen = netns.connect("10.96.0.52", 80, n=30)
    assert len(seen) == 1 and set(seen) <= {"10.244.0.5", "10.244.0.6"}, seen
    for _ in range(5):
        netns.restart()
        netns.sync(services, slices)
        assert netns.connect("10.96.0.52", 80, n=3) == {next(iter(seen)): 3}
    if netns.mode == "nftables":
        (sp,) = service_ports(services[2])
        chosen = Endpoint(next(iter(seen)), 8080)
        listed = netns.run("nft", "list", "set", "ip", "skiff", nft_rules.affinity_set(sp, chosen))
        assert "elements = {" in listed, listed

    # Scaling down: the rules follow.
    slices[0] = endpoint_slice("web", ["10.244.0.6"], unready=["10.244.0.5", "10.244.0.7"])
    netns.sync(services, slices)
    assert netns.connect("10.96.0.50", 80, n=50) == {"10.244.0.6": 50}


def test_nftables_table_partial_syncs_equal_a_full_one_and_others_rules_stay(
    nftables: Netns,
) -> None:
    ns = nftables
    # Rules skiff does not own: another nft table, and an iptables-nft rule.
    ns.run("nft", "add", "table", "ip", "testuser")
    ns.run("nft", "add", "chain", "ip", "testuser", "in", "{ type filter hook input priority 0 ; }")
    ns.run("nft", "add", "rule", "ip", "testuser", "in", "tcp", "dport", "9", "accept")
    ns.run("iptables-nft", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")

    def foreign() -> tuple[str, str]:
        return (
            ns.run("nft", "list", "table", "ip", "testuser"),
            "\n".join(
                line
                for line in ns.run("iptables-nft-save", "-t", "filter").splitlines()
                if not line.startswith("#")
            ),
        )

    before = foreign()
    services = [
        service("web", "10.96.0.50", sessionAffinity="ClientIP"),
        service(
            "np",
            "10.96.0.51",
            type="NodePort",
            ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
        ),
    ]
    slices = [
        endpoint_slice("web", ["10.244.0.5", "10.244.0.6"]),
        endpoint_slice("np", ["10.244.0.5"]),
    ]
    ns.sync(services, slices)
    (sp,) = service_ports(services[0])
    table = ns.nft.save()
    assert f"chain {nft_rules.service_chain(sp)}" in table
    assert "numgen random mod 2 vmap" in table
    assert "tcp . 30080 : goto external-" in table

    def fresh() -> str:
        """What a restarted proxy's first (full) sync loads for the same state."""
        restarted = nft_apply.NftSyncer(ns.nft, NODE, 3600.0)
        by_key = {service_key(s): s for s in services}
        restarted.sync(NODE, set(), by_key, by_service(slices))
        return canonical_nft(ns.nft.save())

    # Partial syncs (an endpoint goes, one comes back unready, a Service goes) leave
    # exactly what a full sync of the same state leaves, stale chains and sets included.
    for step in range(3):
        if step == 0:
            slices[0] = endpoint_slice("web", ["10.244.0.6"])
        elif step == 1:
            slices[1] = endpoint_slice("np", [], unready=["10.244.0.5"])
        else:
            services.pop(0)
        ns.sync(services, slices)
        partial = canonical_nft(ns.nft.save())
        assert partial == fresh(), f"step {step}"
    assert "10.244.0.5" not in partial and "default/web" not in partial
    assert "tcp . 30080 : goto reject-chain" in partial
    assert foreign() == before

    nft_apply.cleanup(ns.nft)
    assert ns.nft.save() == ""
    nft_apply.cleanup(ns.nft)  # none left: nothing to do, and no error
    assert foreign() == before


SWITCH = """
import sys
from proxy.__main__ import make_syncer, parse_args
make_syncer(parse_args(["--proxy-mode", sys.argv[1], "--iptables-backend", "nft"]), "node-a")
"""


def test_starting_in_one_mode_removes_the_others_rules(nftables: Netns) -> None:
    ns = nftables
    web = [service("web", "10.96.0.50")]
    slices = [endpoint_slice("web", ["10.244.0.5"])]
    sync(web, slices, NODE, ns.iptables)  # the iptables mode ran here before
    assert "SKIFF-SVC-" in ns.save()

    ns.run(sys.executable, "-c", SWITCH, "nftables")
    assert "SKIFF-" not in ns.save()
    ns.sync(web, slices)
    assert "default/web/tcp/http" in ns.nft.save()

    ns.run(sys.executable, "-c", SWITCH, "iptables")
    assert ns.nft.save() == ""

    # --cleanup removes every mode's rules, and finds nothing to do the second time.
    sync(web, slices, NODE, ns.iptables)
    ns.syncer.applied = None
    ns.sync(web, slices)
    for _ in range(2):
        ns.run(sys.executable, "-m", "proxy", "--cleanup", "--iptables-backend", "nft")
        assert "SKIFF-" not in ns.save() and ns.nft.save() == ""
