"""The lab end to end: three real nodes in network namespaces, the demo, a node lost and back.

One lab for the module (`skiff lab up --nodes 3`), driven with the real
kubectl through `skiff lab kubectl`: the demo of manifests/demo runs spread
over the nodes; its client pod reaches the web pods on other nodes (host-gw
routes), and the Service by ClusterIP, DNS name and NodePort (once the proxy
and DNS are in the build); stopping one node's agents moves its web pods to
the others within the lab's short grace (20 s) and toleration (10 s), and
starting them brings the node back Ready. `skiff lab down` then leaves no
namespace, mount, cgroup or process behind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .control_plane_join import check_a_second_control_plane_joins_and_takes_over

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "manifests" / "demo"
PAGE = "Hello from skiff"


def skiff_lab_argv(lab: Any) -> list[str]:
    return [sys.executable, "-m", "cli.main", "lab", "--state-dir", str(lab.state_dir)]


pytestmark = pytest.mark.skipif(
    not (ROOT / "kubelet" / "__main__.py").exists(), reason="the kubelet is not in this build yet"
)
needs_proxy = pytest.mark.skipif(
    not ((ROOT / "proxy" / "__main__.py").exists() and (ROOT / "proxy" / "dns.py").exists()),
    reason="the service proxy and DNS are not in this build yet",
)


@pytest.fixture(scope="module")
def lab(new_lab: Any) -> Iterator[Any]:
    out = new_lab.skiff("up", "--nodes", "3", timeout=400)
    assert "3 nodes Ready" in out
    yield new_lab


def web_pods(lab: Any) -> list[dict[str, Any]]:
    return [
        p
        for p in lab.get("pods", "-l", "app=web")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def fetch(lab: Any, url: str) -> str:
    """The page at `url`, fetched by the client pod (busybox wget, bounded by timeout)."""
    return lab.kubectl(
        "exec", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", url, check=False
    )


def test_three_nodes_ready_with_lab_addresses_and_pod_cidrs(lab: Any) -> None:
    nodes = lab.get("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["lab-1", "lab-2", "lab-3"]
    assert all(lab.ready_nodes().values())
    cidrs = {n["spec"]["podCIDR"] for n in nodes}
    assert len(cidrs) == 3  # no two nodes share pod addresses
    for n in nodes:
        ips = [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
        assert ips and ips[0].startswith("172.30.0.")


def test_demo_runs_spread_over_the_nodes(lab: Any) -> None:
    out = lab.kubectl("apply", "-f", str(DEMO))
    assert "deployment.apps/web created" in out
    lab.wait(
        "3 web pods Ready",
        lambda: len([p for p in web_pods(lab) if ready(p)]) == 3,
        timeout=180,
    )
    nodes = {p["spec"]["nodeName"] for p in web_pods(lab)}
    assert nodes == {"lab-1", "lab-2", "lab-3"}, nodes
    lab.wait("client Running", lambda: lab.get("pod", "client")["status"]["phase"] == "Running")


def test_client_reaches_web_pods_on_other_nodes(lab: Any) -> None:
    client_node = lab.get("pod", "client")["spec"]["nodeName"]
    others = [p for p in web_pods(lab) if p["spec"]["nodeName"] != client_node]
    assert len(others) >= 2
    for pod in others:
        url = f"http://{pod['status']['podIP']}:8080/"
        lab.wait(f"{url} from {client_node}", lambda u=url: PAGE in fetch(lab, u), timeout=60)


@needs_proxy
def test_client_reaches_the_service_by_clusterip_and_dns(lab: Any) -> None:
    ip = lab.get("service", "web")["spec"]["clusterIP"]
    for url in (f"http://{ip}/", "http://web.default.svc.cluster.local/", "http://web/"):
        lab.wait(f"{url} from the client", lambda u=url: PAGE in fetch(lab, u), timeout=60)
    # several answers: the Service spreads them over pods on every node
    for _ in range(6):
        assert PAGE in fetch(lab, f"http://{ip}/")


@needs_proxy
def test_nodeport_answers_on_every_node(lab: Any) -> None:
    lab.kubectl("apply", "-f", str(ROOT / "manifests" / "examples" / "service-nodeport.yaml"))
    for node in lab.state["nodes"]:
        url = f"http://{node['ip']}:30080/"
        lab.wait(f"NodePort on {node['name']}", lambda u=url: PAGE in fetch(lab, u), timeout=60)


@needs_proxy
def test_rolling_update_drops_no_request(lab: Any, tmp_path: Path) -> None:
    """A new ConfigMap and template rolled out while the client asks the Service non-stop."""
    loop = subprocess.Popen(
        [
            *skiff_lab_argv(lab),
            "kubectl",
            "exec",
            "client",
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 150 ]; do i=$((i+1)); "
            "timeout 3 wget -q -O - http://web/ >/dev/null 2>&1 && echo OK || echo FAIL; "
            "sleep 0.2; done",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        page = (DEMO / "web-content.yaml").read_text().replace("Hello from skiff", "Hello again")
        (tmp_path / "v2.yaml").write_text(page.replace("name: web-content", "name: web-content-v2"))
        lab.kubectl("apply", "-f", str(tmp_path / "v2.yaml"))
        lab.kubectl(
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            '[{"op": "replace", "path": "/spec/template/spec/volumes/0/configMap/name",'
            ' "value": "web-content-v2"}]',
        )
        out = lab.kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200)
        assert "successfully rolled out" in out
        results = loop.communicate(timeout=120)[0].split()
    finally:
        if loop.poll() is None:
            loop.kill()
    assert results.count("OK") > 50
    assert "FAIL" not in results, f"{results.count('FAIL')} of {len(results)} requests failed"
    assert "Hello again" in fetch(lab, "http://web/")


def test_rollout_completes_while_control_plane_is_sigkilled(lab: Any) -> None:
    lab.kubectl("set", "env", "deployment/web", "ROUND=killed")
    for component in ("controller-manager", "scheduler", "apiserver"):
        out = lab.skiff("restart", component, "--kill", timeout=200)
        assert "killed and started again" in out
    out = lab.kubectl("rollout", "status", "deployment/web", "--timeout=240s", timeout=260)
    assert "successfully rolled out" in out

    def settled() -> bool:
        pods = web_pods(lab)
        return len(pods) == 3 and all(ready(p) for p in pods)

    lab.wait("exactly 3 web pods, all Ready", settled, timeout=120)
    for pod in web_pods(lab):  # nothing lost, nothing duplicated: 3, all of the new template
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
        assert env.get("ROUND") == "killed"
    sets = lab.get("replicasets", "-l", "app=web")["items"]
    assert sorted(rs["status"].get("replicas", 0) for rs in sets)[-1] == 3
    assert sum(rs["status"].get("replicas", 0) for rs in sets) == 3


def test_stopped_node_loses_its_pods_and_comes_back(lab: Any) -> None:
    client_node = lab.get("pod", "client")["spec"]["nodeName"]
    victim = next(
        n for n in ("lab-3", "lab-2") if n != client_node
    )  # not lab-1: the control plane stays; not the client's node: it keeps asking
    assert any(p["spec"]["nodeName"] == victim for p in web_pods(lab))
    out = lab.skiff("node", "stop", victim)
    assert "stopped" in out
    lab.wait(f"{victim} NotReady", lambda: lab.ready_nodes()[victim] is False, timeout=90)

    def replaced() -> bool:
        pods = [p for p in web_pods(lab) if ready(p) and p["spec"]["nodeName"] != victim]
        return len(pods) == 3

    # 20 s to NotReady, 10 s of toleration, then a new pod starts elsewhere
    lab.wait(f"3 web pods Ready off {victim}", replaced, timeout=150)
    if (ROOT / "proxy" / "__main__.py").exists():
        ip = lab.get("service", "web")["spec"]["clusterIP"]
        for _ in range(4):  # (the page may be the rolled-out one by now)
            assert "served by busybox httpd" in fetch(lab, f"http://{ip}/")
    assert "started" in lab.skiff("node", "start", victim)
    lab.wait(f"{victim} Ready again", lambda: lab.ready_nodes()[victim], timeout=90)


def serves_csrs(lab: Any) -> bool:
    out = lab.kubectl("api-resources", "--api-group=certificates.k8s.io", "-o", "name", check=False)
    return "certificatesigningrequests" in out


def test_join_with_a_token_over_the_lab_bridge(lab: Any) -> None:
    if not serves_csrs(lab):
        pytest.skip("the apiserver does not serve certificates.k8s.io CSRs yet (join needs them)")
    words = lab.skiff("token", "create", "--print-join-command").split()
    token, pin = words[words.index("--token") + 1], words[-1]
    out = lab.skiff("join", "--token", token, "--discovery-token-ca-cert-hash", pin, timeout=200)
    assert "lab-4 joined" in out
    lab.wait("lab-4 Ready", lambda: lab.ready_nodes().get("lab-4"), timeout=120)
    csrs = lab.get("csr")["items"]
    requester = f"system:bootstrap:{token.split('.')[0]}"
    mine = [c for c in csrs if c["spec"]["username"] == requester]
    assert mine and any(c["type"] == "Approved" for c in mine[0]["status"].get("conditions", []))

    # an expired token is refused
    short = lab.skiff("token", "create", "--ttl", "2s", "--print-join-command").split()
    expired = short[short.index("--token") + 1]
    token_id = expired.split(".")[0]
    lab.wait(
        "the short token to expire",
        lambda: (
            "<invalid>"
            in next(
                (line for line in lab.skiff("token", "list").splitlines() if token_id in line), ""
            )
        ),
        timeout=30,
    )
    out = lab.skiff("join", "--token", expired, "--discovery-token-ca-cert-hash", pin, check=False)
    assert "did not join" in out
    assert "unknown or expired" in out or "no JWS" in out


def test_a_second_control_plane_joins_and_takes_over(lab: Any) -> None:
    # Last before down: it kills lab-1's controller-manager and scheduler.
    check_a_second_control_plane_joins_and_takes_over(lab)


def test_down_leaves_nothing(lab: Any) -> None:
    state = lab.state
    out = lab.skiff("down", timeout=300)
    assert f"removed {len(state['nodes'])} nodes" in out
    lab.assert_nothing_left(state)
