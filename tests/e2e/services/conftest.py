"""The node of the kubelet tests (imported, not copied) with `skiff proxy` on it."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ComponentProcess, free_port
from tests.integration.kubelet.conftest import NODE, Node, ns, one_node, wait_for  # noqa: F401


@dataclass
class Services:
    node: Node
    proxy: ComponentProcess
    dns: ComponentProcess | None
    metrics: int
    mode: str = "iptables"

    def syncs(self) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).text
        counts = re.findall(
            r"^kubeproxy_sync_proxy_rules_duration_seconds_count\S* (\S+)$", text, re.M
        )
        return sum(float(c) for c in counts)  # full and partial


def start_proxy(node: Node, metrics: int, mode: str = "iptables") -> ComponentProcess:
    proxy = ComponentProcess(
        "proxy",
        node.server.kubeconfig,
        node.base / "proxy.log",
        "--hostname-override",
        NODE,
        "--proxy-mode",
        mode,
        "--iptables-min-sync-period",
        "0.2",
        "--metrics-bind-address",
        f"127.0.0.1:{metrics}",
        "--healthz-bind-address",
        f"127.0.0.1:{free_port()}",
    ).start()
    return proxy


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The kubelet tests' node, for this module (theirs lasts for their directory)."""
    with one_node(tmp_path_factory.mktemp("node")) as n:
        yield n


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def services(node: Node, request: pytest.FixtureRequest) -> Iterator[Services]:
    """The proxy on the module's node, once per mode: the iptables mode's tests run
    first, then the proxy is stopped and started again in the nftables mode on the
    same node (a node costs far more than a proxy: the suite's time is counted)."""
    proxy_mode = request.param
    if proxy_mode == "nftables" and not shutil.which("nft"):
        pytest.skip("needs nft (nftables)")
    # A real node has a default route, so a packet to a ClusterIP without endpoints
    # is routed, meets the FORWARD hook and is REJECTed there. This namespace has
    # no route out (and must not): the service range is routed into a veth pair
    # that leads nowhere, standing in for it.
    for argv in (
        ["ip", "link", "add", "svc0", "type", "veth", "peer", "name", "svc1"],
        ["ip", "link", "set", "svc0", "up"],
        ["ip", "link", "set", "svc1", "up"],
        ["ip", "route", "add", "10.96.0.0/12", "dev", "svc0"],
    ):
        subprocess.run(argv, check=True)
    metrics = free_port()
    s = Services(node, start_proxy(node, metrics, proxy_mode), None, metrics, proxy_mode)
    try:
        wait_for(lambda: s.syncs() >= 1, "the proxy's first sync")
        yield s
    finally:
        if s.dns is not None:
            s.dns.stop()
        s.proxy.stop()
        subprocess.run(["ip", "link", "del", "svc0"], check=False)
        # The node's netns goes with the fixture, and our chains with it; the
        # proxy's own cleanup is exercised anyway.
        ComponentProcess(
            "proxy", node.server.kubeconfig, node.base / "cleanup.log", "--cleanup"
        ).start()
