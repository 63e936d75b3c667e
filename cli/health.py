"""Is a component healthy? Each answers the question its own way, from outside.

The CLI may not import the components (the architecture's import rules), so
these checks look at what a user could look at: the apiserver's `/readyz`, a
socket that accepts connections, the Lease a leader renews, the Node's Ready
condition. Each returns "" when healthy, else why not in a few words.
"""

from __future__ import annotations

import datetime
import json
import socket
import time
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx

from client.config import ConfigError, load_config

from .layout import Layout


def api(layout: Layout, timeout: float = 3.0) -> httpx.Client:
    """An HTTP client for the apiserver with the admin kubeconfig."""
    config = load_config(str(layout.kubeconfig))
    return httpx.Client(
        base_url=config.server, verify=config.ssl_context(), headers=config.headers(),
        timeout=timeout,
    )  # fmt: skip


def get(layout: Layout, path: str) -> dict[str, Any] | None:
    """GET an API path; None when it is not there or the apiserver does not answer."""
    try:
        with api(layout) as c:
            r = c.get(path)
    except (httpx.HTTPError, ConfigError, OSError):
        return None
    return r.json() if r.status_code == 200 else None


def apiserver(layout: Layout) -> str:
    try:
        with api(layout) as c:
            r = c.get("/readyz")
    except (httpx.HTTPError, ConfigError, OSError) as e:
        return f"/readyz does not answer ({type(e).__name__})"
    return "" if r.status_code == 200 else f"/readyz: {r.text.strip()[-200:]}"


def socket_accepts(path: Path) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        try:
            s.connect(str(path))
        except OSError as e:
            return f"{path}: {e.strerror or e}"
    return ""


def _age(stamp: str | None) -> float | None:
    if not stamp:
        return None
    when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.UTC) - when).total_seconds()


def leader_lease(layout: Layout, name: str) -> str:
    """A controller-manager or scheduler is healthy while a leader renews its Lease."""
    lease = get(layout, f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}")
    if lease is None:
        return f"no Lease kube-system/{name} yet"
    spec = lease.get("spec") or {}
    age = _age(spec.get("renewTime"))
    if age is None or age > float(spec.get("leaseDurationSeconds") or 15):
        return f"Lease {name} not renewed for {age or 0:.0f}s"
    return ""


def kubelet_since(layout: Layout) -> float:
    """When the supervisor last started the kubelet (0: not known)."""
    try:
        status = json.loads(layout.status_file.read_text())
        return float(status["components"]["kubelet"]["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def node_ready(layout: Layout) -> str:
    """Ready, as reported by the kubelet running now: a Ready=True left from before a
    `skiff down` (the Node keeps it until the lifecycle controller's grace runs out)
    does not count."""
    if why := apiserver(layout):
        return f"the apiserver: {why}"
    node = get(layout, f"/api/v1/nodes/{layout.node_name}")
    if node is None:
        return f"Node {layout.node_name} not registered"
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            heard = _age(c.get("lastHeartbeatTime"))
            started = time.time() - kubelet_since(layout)
            if heard is not None and heard > started + 1.0:
                return "the kubelet has not reported the Node's status since it started"
            if c.get("status") == "True":
                return ""
            state = "NotReady" if c.get("status") == "False" else "Unknown"
            return f"Node {state}: {c.get('message', '')}"
    return "Node has no Ready condition yet"


DNS_PROBE_NAME = "kubernetes.default.svc.cluster.local"


def cluster_dns(layout: Layout, port: int = 53) -> str:
    """Cluster DNS answers: the A record of the `kubernetes` Service, asked of the DNS
    server on the node's address (what pods reach through kube-dns' EndpointSlice). A
    NXDOMAIN means it serves but has not yet seen the Service: not ready either."""
    query = dns.message.make_query(DNS_PROBE_NAME, dns.rdatatype.A)
    try:
        reply = dns.query.udp(query, layout.node_ip, port=port, timeout=1.0)
    except (dns.exception.DNSException, OSError, ValueError) as e:
        return f"{layout.node_ip}:{port} does not answer ({type(e).__name__})"
    if reply.rcode() != dns.rcode.NOERROR:
        return f"{DNS_PROBE_NAME}: {dns.rcode.to_text(reply.rcode())}"
    if not any(r.rdtype == dns.rdatatype.A for r in reply.answer):
        return f"{DNS_PROBE_NAME}: no A record yet"
    return ""
