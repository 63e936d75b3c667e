"""`skiff proxy` and `skiff dns` as processes, against a real apiserver, in a network
namespace the test makes (contract F: the pytest main thread enters it with
setns(2) for the module's life, so every process started inherits it).

Services and EndpointSlices are written by hand through the API (no kubelet
here): "pods" are addresses 10.244.0.5-7 on a veth inside the namespace with a
small server answering its own address, the node address is 192.168.50.2.
What is checked is what a user sees: connections, DNS answers, iptables-save.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from tests.conftest import ApiServerProcess, ComponentProcess, free_port
from tests.integration.proxy.test_apply import CLIENT, SERVER, canonical_nft
from tests.polling import eventually

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables-nft-restore"),
    reason="needs root and iptables",
)

CLONE_NEWNET = 0x40000000
NODE_NAME = "node-a"
NODE_IP = "192.168.50.2"
PODS = ("10.244.0.5", "10.244.0.6", "10.244.0.7")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


# What a wait takes for "not yet": the proxy, the servers or DNS not there yet.
NOT_YET = (httpx.HTTPError, OSError, KeyError, ValueError, dns.exception.DNSException)


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout


@dataclass
class Cluster:
    base: Path
    server: ApiServerProcess
    proxy: ComponentProcess
    healthz: int
    metrics: int
    mode: str = "iptables"

    def api(self) -> httpx.Client:
        return self.server.client()

    def connect(self, host: str, port: int, n: int = 1) -> dict[str, int]:
        return json.loads(run(sys.executable, "-c", CLIENT, host, str(port), str(n)))

    def save(self) -> str:
        """Both tables, without comments, counters and policies: what a user diffs
        (in the nftables mode, skiff's table as `nft list` prints it, and those too)."""
        ours = ""
        if self.mode == "nftables":
            ours = canonical_nft(run("nft", "list", "table", "ip", "skiff")) + "\n"
        out = (
            ours + run("iptables-nft-save", "-t", "filter") + run("iptables-nft-save", "-t", "nat")
        )
        return "\n".join(
            line.split()[0] if line.startswith(":") else line
            for line in out.splitlines()
            if not line.startswith("#")
        )

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def syncs(self) -> float:
        return self.metric("kubeproxy_sync_proxy_rules_duration_seconds_count")

    def start_proxy(self) -> None:
        self.proxy = ComponentProcess(
            "proxy",
            self.server.kubeconfig,
            self.base / "proxy.log",
            "--hostname-override",
            NODE_NAME,
            "--iptables-backend",
            "nft",
            "--proxy-mode",
            self.mode,
            "--iptables-min-sync-period",
            "0.5",
            "--healthz-bind-address",
            f"127.0.0.1:{self.healthz}",
            "--metrics-bind-address",
            f"127.0.0.1:{self.metrics}",
        ).start()
        eventually(lambda: self.syncs() >= 1, what="the proxy's first sync", ignoring=NOT_YET)


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One apiserver and proxy per mode, in a namespace of their own."""
    if request.param == "nftables" and not shutil.which("nft"):
        pytest.skip("no nft")
    base = tmp_path_factory.mktemp("proxy-loop")
    netns = f"skifftest-proxy-{uuid.uuid4().hex[:8]}"
    run("ip", "netns", "add", netns)
    home = os.open(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    _setns(fd)
    os.close(fd)
    procs: list[Any] = []
    server = ApiServerProcess(base / "apiserver")
    c = Cluster(base, server, None, free_port(), free_port(), request.param)  # type: ignore[arg-type]
    try:
        run("ip", "link", "set", "lo", "up")
        run("ip", "link", "add", "node0", "type", "veth", "peer", "name", "node1")
        for ip in (*PODS, NODE_IP):
            run("ip", "addr", "add", f"{ip}/32", "dev", "node0")
        run("ip", "link", "set", "node0", "up")
        run("ip", "link", "set", "node1", "up")
        run("ip", "route", "add", "10.96.0.0/12", "dev", "node0")
        ready = base / "servers-ready"
        procs.append(subprocess.Popen([sys.executable, "-c", SERVER, str(ready), *PODS]))
        eventually(ready.exists, what="the test servers", ignoring=NOT_YET)
        server.start()
        with c.api() as api:
            node = {
                "metadata": {"name": NODE_NAME},
                "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]},
            }
            assert api.post("/api/v1/nodes", json=node).status_code == 201
        c.start_proxy()
        yield c
    finally:
        if c.proxy is not None:
            c.proxy.stop()
        for p in procs:
            p.kill()
            p.wait()
        server.stop()
        _setns(home)
        os.close(home)
        subprocess.run(["ip", "netns", "del", netns], check=False)


def service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}])
    return {"metadata": {"name": name}, "spec": spec}


def endpoint_slice(name: str, ready: list[str], unready: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            *({"addresses": [ip], "conditions": {"ready": True}} for ip in ready),
            *({"addresses": [ip], "conditions": {"ready": False}} for ip in unready or []),
        ],
    }


SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
SERVICES = "/api/v1/namespaces/default/services"


def put_slice(api: httpx.Client, body: dict[str, Any]) -> None:
    name = body["metadata"]["name"]
    current = api.get(f"{SLICES}/{name}")
    if current.status_code == 404:
        r = api.post(SLICES, json=body)
    else:
        body["metadata"]["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
        r = api.put(f"{SLICES}/{name}", json=body)
    assert r.status_code in (200, 201), r.text


def test_cluster_ip_follows_endpoints_and_refuses_without(cluster: Cluster) -> None:
    with cluster.api() as api:
        ip = api.post(SERVICES, json=service("web")).json()["spec"]["clusterIP"]
        put_slice(api, endpoint_slice("web", ["10.244.0.5", "10.244.0.6"], ["10.244.0.7"]))
        eventually(
            lambda: cluster.connect(ip, 80).keys() <= set(PODS),
            what="the ClusterIP to answer",
            ignoring=NOT_YET,
        )
        seen = cluster.connect(ip, 80, n=200)
        assert set(seen) == {"10.244.0.5", "10.244.0.6"}, seen  # never the unready one

        put_slice(api, endpoint_slice("web", list(PODS)))  # scaled up
        eventually(
            lambda: "10.244.0.7" in cluster.connect(ip, 80, n=30),
            what="the new endpoint",
            ignoring=NOT_YET,
        )
        assert set(cluster.connect(ip, 80, n=200)) == set(PODS)

        put_slice(api, endpoint_slice("web", ["10.244.0.6"]))  # scaled down
        eventually(
            lambda: cluster.connect(ip, 80, n=20) == {"10.244.0.6": 20},
            what="scale down",
            ignoring=NOT_YET,
        )
        assert cluster.connect(ip, 80, n=200) == {"10.244.0.6": 200}

        empty = api.post(SERVICES, json=service("empty")).json()["spec"]["clusterIP"]
        put_slice(api, endpoint_slice("empty", [], ["10.244.0.7"]))
        eventually(
            lambda: cluster.connect(empty, 80) == {"ConnectionRefusedError": 1},
            what="a Service without endpoints to refuse",
            ignoring=NOT_YET,
        )

        np = service(
            "np",
            type="NodePort",
            ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
        )
        assert api.post(SERVICES, json=np).status_code == 201
        put_slice(api, endpoint_slice("np", ["10.244.0.5", "10.244.0.6"]))
        eventually(
            lambda: cluster.connect(NODE_IP, 30080).keys() <= set(PODS),
            what="the NodePort",
            ignoring=NOT_YET,
        )
        assert set(cluster.connect(NODE_IP, 30080, n=100)) == {"10.244.0.5", "10.244.0.6"}


def test_bursts_coalesce_foreign_rules_survive_and_a_restart_converges(cluster: Cluster) -> None:
    run("iptables-nft", "-w", "-t", "nat", "-N", "TEST-USER")
    run(
        "iptables-nft",
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
    run("iptables-nft", "-w", "-t", "nat", "-A", "PREROUTING", "-j", "TEST-USER")
    foreign = ["-A TEST-USER -p tcp -m tcp --dport 9 -j RETURN", "-A PREROUTING -j TEST-USER"]

    with cluster.api() as api:
        ip = api.post(SERVICES, json=service("burst")).json()["spec"]["clusterIP"]
        put_slice(api, endpoint_slice("burst", ["10.244.0.5"]))
        eventually(
            lambda: cluster.connect(ip, 80) == {"10.244.0.5": 1},
            what="the burst Service",
            ignoring=NOT_YET,
        )
    before = cluster.syncs()

    async def burst() -> None:
        async with cluster.server.async_client() as client:
            current = (await client.get(f"{SLICES}/burst")).json()
            for i in range(500):  # 500 endpoint changes, one after the other
                current["endpoints"] = [{"addresses": [PODS[i % 2]], "conditions": {"ready": True}}]
                r = await client.put(f"{SLICES}/burst", json=current)
                assert r.status_code == 200, r.text
                current = r.json()

    asyncio.run(burst())  # the last change names 10.244.0.6
    eventually(
        lambda: cluster.connect(ip, 80, n=5) == {"10.244.0.6": 5},
        what="the last change",
        ignoring=NOT_YET,
    )
    syncs = cluster.syncs() - before
    assert 1 <= syncs < 100, f"{syncs} syncs for 500 changes"

    ruleset = cluster.save()
    for rule in foreign:
        assert rule in ruleset.splitlines()
    health = httpx.get(f"http://127.0.0.1:{cluster.healthz}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["lastUpdated"]
    table = "skiff" if cluster.mode == "nftables" else "nat"
    assert cluster.metric(f'kubeproxy_sync_proxy_rules_iptables_total{{table="{table}"}}') > 10

    # A restarted proxy (killed, not stopped cleanly) loads exactly the same rules.
    cluster.proxy.kill()
    cluster.start_proxy()
    after = cluster.save()
    assert after == ruleset
    for rule in foreign:
        assert rule in after.splitlines()


class FakeUpstream:
    """An upstream resolver on 127.0.0.77 that answers every A question with 192.0.2.7."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.77", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A", "192.0.2.7"))
            self.sock.sendto(r.to_wire(), addr)


def test_dns_through_the_kube_dns_service(cluster: Cluster, tmp_path: Path) -> None:
    if cluster.mode != "iptables":  # the same packets as any ClusterIP: keep the suite short
        pytest.skip("DNS does not depend on the proxy mode; run in the iptables mode")
    upstream = FakeUpstream()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.77\n")
    server = ComponentProcess(
        "proxy.dns",
        cluster.server.kubeconfig,
        cluster.base / "dns.log",
        "--node-name",
        NODE_NAME,
        "--advertise-address",
        NODE_IP,
        "--resolv-conf",
        str(resolv),
        "--upstream-port",
        str(upstream.port),
    ).start()
    try:
        with cluster.api() as api:
            web = api.post(SERVICES, json=service("dnsweb")).json()["spec"]["clusterIP"]
            headless = service("dnsdb", clusterIP="None")
            assert api.post(SERVICES, json=headless).status_code == 201
            put_slice(api, endpoint_slice("dnsdb", ["10.244.0.5", "10.244.0.6"]))
        shown = eventually(
            lambda: re.search(
                r"kube-dns\s+ClusterIP\s+10\.96\.0\.10\s",
                cluster.server.kubectl("get", "svc", "-n", "kube-system", "kube-dns", check=False),
            ),
            30,
            "kubectl get svc kube-dns",
            ignoring=NOT_YET,
        )
        assert shown

        def ask(name: str, rdtype: str = "A") -> dns.message.Message:
            return dns.query.udp(dns.message.make_query(name, rdtype), "10.96.0.10", timeout=2)

        reply = eventually(
            lambda: ask("dnsweb.default.svc.cluster.local"),
            what="DNS at 10.96.0.10",
            ignoring=NOT_YET,
        )
        assert [r.to_text() for r in reply.answer[0]] == [web]
        db = ask("dnsdb.default.svc.cluster.local")
        assert sorted(r.to_text() for r in db.answer[0]) == ["10.244.0.5", "10.244.0.6"]
        assert ask("nothing.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
        srv = ask("_http._tcp.dnsweb.default.svc.cluster.local", "SRV")
        assert srv.answer[0][0].port == 80
        tcp = dns.query.tcp(
            dns.message.make_query("dnsweb.default.svc.cluster.local", "A"), "10.96.0.10", timeout=2
        )
        assert [r.to_text() for r in tcp.answer[0]] == [web]
        # Not ours: the node's resolver answers.
        assert [r.to_text() for r in ask("example.org").answer[0]] == ["192.0.2.7"]
    finally:
        server.stop()
        upstream.sock.close()
    # Stopped, it is no longer an endpoint of kube-dns.
    with cluster.api() as api:
        gone = api.get(
            f"/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-{NODE_NAME}"
        )
        assert gone.status_code == 404
