"""Services end to end: real pods on a real node (contract F: one test-made network
namespace holds etcd, apiserver, controller-manager, scheduler, runtime, kubelet,
`skiff proxy` and `skiff dns`), reached from a client pod the way a user would,
with busybox's `wget -qO- http://web` (and by ClusterIP) and `nslookup`.

The node is the kubelet tests' `node` fixture (tests/integration/kubelet/conftest.py),
imported, not copied; the proxy and DNS are started here on top of it.
"""

from __future__ import annotations

import collections
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from proto import runtime_pb2 as pb
from tests.conftest import ComponentProcess
from tests.e2e.services.conftest import Services, start_proxy
from tests.integration.kubelet.conftest import (
    NODE,
    Node,
    busybox,
    condition,
    make_pod,
    status_of,
    wait_for,
)
from tests.integration.proxy.test_apply import canonical_nft


def create(node: Node, ns: str, obj: dict[str, Any], plural: str = "pods") -> dict[str, Any]:
    with node.api() as api:
        r = api.post(f"/api/v1/namespaces/{ns}/{plural}", json=obj)
        assert r.status_code == 201, r.text
        return dict(r.json())


def web_pod(name: str, *, ready: bool = True, **labels: str) -> dict[str, Any]:
    """busybox httpd answering its own hostname on the port named `http`."""
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    if not ready:
        probe = {"exec": {"command": ["false"]}, "periodSeconds": 1}
    container = busybox(
        "web",
        "sh",
        "-c",
        "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www",
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe=probe,
    )
    pod = make_pod(name, container)
    pod["metadata"]["labels"] = {"app": "web", "name": name, **labels}
    return pod


def service(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            **spec,
        },
    }


def running(node: Node, ns: str, name: str, *, ready: bool = True) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (s := status_of(node, ns, name)).get("phase") == "Running"
            and (condition(s, "Ready") == "True" or not ready)
            and s
        ),
        f"pod {name} Running" + (" and Ready" if ready else ""),
        timeout=90,
    )


def sh(node: Node, ns: str, pod: str, script: str, timeout: int = 120) -> str:
    """Run a shell script in the pod's container (through the runtime); its output."""
    status = status_of(node, ns, pod)
    cid = status["containerStatuses"][0]["containerID"].split("://", 1)[1]
    request = pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=timeout)
    result = node.runtime.client().ExecSync(request, timeout=timeout + 10)
    return result.stdout.decode() + result.stderr.decode()


def url(host: str, port: int) -> str:
    return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"


def get(node: Node, ns: str, client: str, host: str, port: int = 80) -> str:
    """The body (a pod's hostname), or wget's complaint (e.g. Connection refused)."""
    return sh(node, ns, client, f"wget -qO- {url(host, port)} 2>&1 | tail -n 1").strip()


def fetch_many(
    node: Node, ns: str, client: str, host: str, n: int, port: int = 80
) -> collections.Counter[str]:
    out = sh(
        node,
        ns,
        client,
        f"i=0; while [ $i -lt {n} ]; do wget -qO- {url(host, port)} 2>&1 | tail -n 1;"
        " i=$((i+1)); done",
    )
    return collections.Counter(line.strip() for line in out.splitlines() if line.strip())


def endpoints_of(node: Node, ns: str, name: str) -> set[str]:
    with node.api() as api:
        r = api.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}")
    if r.status_code != 200:
        return set()
    return {
        e["targetRef"]["name"]
        for e in r.json().get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
    }


# First in the module, so that in each mode no earlier test's namespace is still going
# (their pods take their grace period to stop) while the rules are compared.
def test_proxy_restart_same_rules(services: Services, ns: str) -> None:
    node = services.node
    create(node, ns, web_pod("web-0"))
    create(node, ns, service("web", {"app": "web"}), "services")
    running(node, ns, "web-0")
    wait_for(lambda: endpoints_of(node, ns, "web") == {"web-0"}, "endpoints")

    def save() -> str:
        if services.mode == "nftables":
            listing = subprocess.run(
                ["nft", "list", "table", "ip", "skiff"], capture_output=True, text=True, check=True
            ).stdout
            return canonical_nft(listing)
        out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
        return "\n".join(
            line.split()[0] if line.startswith(":") else line
            for line in out.splitlines()
            if not line.startswith("#")
        )

    # The earlier tests' namespaces are gone (their Services and endpoints leaving
    # while the proxy restarts would change the rules under the comparison).
    def quiet() -> bool:
        with node.api() as api:
            items = api.get("/api/v1/namespaces").json()["items"]
        return not any(n.get("status", {}).get("phase") == "Terminating" for n in items)

    wait_for(quiet, "the earlier tests' namespaces to go", timeout=120)
    # The proxy has seen the endpoint, not just the Service (its REJECT rule would go).
    mark = f"{ns}/web/tcp/http__" if services.mode == "nftables" else f"{ns}/web:http -> "
    wait_for(lambda: mark in save(), "the Service's endpoint rules")
    before = save()
    services.proxy.kill()
    services.proxy = start_proxy(node, services.metrics, services.mode)
    wait_for(lambda: services.syncs() >= 1, "the restarted proxy's first sync")
    assert save() == before


def test_cluster_ip_reaches_ready_pods(
    services: Services,
    ns: str,
) -> None:
    """Every ready pod, never an unready or deleted one; scaling; refusal without endpoints.
    (Test names stay short: the `ns` fixture names the namespace after 40 characters
    of them, and each mode's run needs its own.)"""
    node = services.node
    for name in ("web-0", "web-1", "web-2"):
        create(node, ns, web_pod(name))
    create(node, ns, web_pod("web-unready", ready=False))
    create(node, ns, make_pod("client", busybox("client")))
    ip = create(node, ns, service("web", {"app": "web"}), "services")["spec"]["clusterIP"]
    for name in ("web-0", "web-1", "web-2", "client"):
        running(node, ns, name)
    running(node, ns, "web-unready", ready=False)
    wait_for(lambda: endpoints_of(node, ns, "web") == {"web-0", "web-1", "web-2"}, "endpoints")

    wait_for(lambda: get(node, ns, "client", ip).startswith("web-"), "the ClusterIP")
    seen = fetch_many(node, ns, "client", ip, 200)
    assert set(seen) == {"web-0", "web-1", "web-2"}, seen  # each ready one, never the unready

    # Scale down: a deleted pod is never reached again.
    with node.api() as api:
        api.delete(f"/api/v1/namespaces/{ns}/pods/web-2", params={"gracePeriodSeconds": "0"})
    wait_for(lambda: endpoints_of(node, ns, "web") == {"web-0", "web-1"}, "web-2 to leave")
    wait_for(lambda: set(fetch_many(node, ns, "client", ip, 10)) <= {"web-0", "web-1"}, "rules")
    seen = fetch_many(node, ns, "client", ip, 200)
    assert set(seen) == {"web-0", "web-1"}, seen

    # Scale up: the new pod gets traffic.
    create(node, ns, web_pod("web-3"))
    running(node, ns, "web-3")
    wait_for(lambda: "web-3" in fetch_many(node, ns, "client", ip, 20), "web-3 to be reached")

    # A Service without endpoints refuses at once.
    empty = create(node, ns, service("empty", {"app": "nothing"}), "services")["spec"]["clusterIP"]
    wait_for(lambda: "Connection refused" in get(node, ns, "client", empty), "a refusal")


def test_client_ip_affinity_and_hairpin(services: Services, ns: str) -> None:
    node = services.node
    for name in ("web-a", "web-b"):
        create(node, ns, web_pod(name))
    create(node, ns, make_pod("client", busybox("client")))
    sticky = create(
        node, ns, service("sticky", {"app": "web"}, sessionAffinity="ClientIP"), "services"
    )["spec"]["clusterIP"]
    itself = create(node, ns, service("itself", {"name": "web-a"}), "services")["spec"]["clusterIP"]
    for name in ("web-a", "web-b", "client"):
        running(node, ns, name)
    wait_for(lambda: endpoints_of(node, ns, "sticky") == {"web-a", "web-b"}, "endpoints")
    wait_for(lambda: get(node, ns, "client", sticky).startswith("web-"), "sticky")
    seen = fetch_many(node, ns, "client", sticky, 30)
    assert len(seen) == 1 and set(seen) <= {"web-a", "web-b"}, seen

    # Hairpin: web-a reaches itself through a Service whose only endpoint it is.
    wait_for(lambda: endpoints_of(node, ns, "itself") == {"web-a"}, "endpoints of itself")
    wait_for(
        lambda: get(node, ns, "web-a", itself) == "web-a",
        "web-a to reach itself through its Service",
    )
    assert set(fetch_many(node, ns, "web-a", itself, 20)) == {"web-a"}


def test_names_resolve_and_connect(services: Services, ns: str) -> None:
    if services.mode != "iptables":  # the suite's time is counted
        pytest.skip("DNS answers do not depend on the proxy mode; run in the iptables mode")
    node = services.node
    create(node, ns, web_pod("web-0"))
    create(node, ns, make_pod("client", busybox("client")))
    create(node, ns, service("web", {"app": "web"}), "services")
    running(node, ns, "web-0")
    status = running(node, ns, "client")
    # The DNS server listens on the node's bridge address, which pods reach; the
    # bridge exists once a pod runs.
    gateway = status["podIP"].rsplit(".", 1)[0] + ".1"
    if services.dns is None:
        services.dns = ComponentProcess(
            "proxy.dns",
            node.server.kubeconfig,
            node.base / "dns.log",
            "--node-name",
            NODE,
            "--advertise-address",
            gateway,
            "--resolv-conf",
            str(Path(node.base) / "no-upstreams"),
        ).start()
    resolv = sh(node, ns, "client", "cat /etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv and f"search {ns}.svc.cluster.local" in resolv
    with node.api() as api:
        ip = api.get(f"/api/v1/namespaces/{ns}/services/web").json()["spec"]["clusterIP"]

    def lookup(name: str) -> str:
        """The last address nslookup prints for `name` (through resolv.conf)."""
        out = sh(node, ns, "client", f"nslookup {name}")
        found = re.findall(r"^Address:\s*(\S+)$", out, re.M)
        return found[-1] if len(found) > 1 else ""  # the first is the server's

    # The short name, through the search list, and the full one.
    assert wait_for(lambda: lookup("web") == ip and ip, "web to resolve") == ip
    fqdn = f"web.{ns}.svc.cluster.local"
    assert lookup(fqdn) == ip
    # and connect, by the names, as `wget -qO- http://web` from a pod does
    assert sh(node, ns, "client", "wget -qO- http://web") == "web-0\n"
    assert sh(node, ns, "client", f"wget -qO- http://{fqdn}") == "web-0\n"
    assert "NXDOMAIN" in sh(node, ns, "client", f"nslookup nothing.{ns}.svc.cluster.local")
    shown = node.kubectl("get", "svc", "-n", "kube-system", "kube-dns")
    assert "10.96.0.10" in shown
