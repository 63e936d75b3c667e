"""The lab end to end: three real nodes in network namespaces, the demo, a node lost and back.

One lab for the module (`skiff lab up --nodes 3`), driven with the real
kubectl through `skiff lab kubectl`: the demo of manifests/demo runs spread
over the nodes; its client pod reaches the web pods on other nodes (host-gw
routes), and the Service by ClusterIP, DNS name and NodePort (once the proxy
and DNS are in the build); stopping one node's agents moves its web pods to
the others within the lab's short grace (20 s) and toleration (10 s), and
starting them brings the node back Ready. `skiff dashboard` shows the lab in
a real headless Chromium and drives its loops; the study guide's lab
exercises run here as written; so do tests/e2e/lab_workloads.py's Jobs,
CronJob, DaemonSet and StatefulSet. `skiff lab down` then leaves no namespace,
mount, cgroup or process behind.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import browser
from tests.e2e.conftest import in_netns
from tests.polling import eventually

from . import lab_workloads
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


def loop_control(lab: Any) -> dict[str, str]:
    out = lab.kubectl(
        "get", "configmap", "skiff-loop-control", "-n", "kube-system", "-o", "json", check=False
    )
    return dict(json.loads(out).get("data") or {}) if out.startswith("{") else {}


@contextlib.contextmanager
def dashboard(lab: Any, log: Path) -> Iterator[str]:
    """`skiff dashboard` with the lab's kubeconfig, started by a thread inside the first
    node's namespace (the apiserver is reachable only in the lab); stopped afterwards."""
    port = 8001  # the default: nothing else listens on it in the lab's namespace
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "dashboard", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=lab.shell_env(),
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        browser.eventually(up, "skiff dashboard answering", timeout=30)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


@pytest.mark.skipif(not browser.has_browser(), reason=browser.MISSING)
def test_dashboard_shows_the_lab_scales_live_and_pauses_and_steps_its_loops(
    lab: Any, tmp_path: Path
) -> None:
    """The page of issue 16 on the lab: its three nodes holding the demo's pods, five
    pods a few seconds after `kubectl scale`, pause and step from the page taken by the
    real loops. The screenshot is kept beside the test's tmp dir (dashboard.png)."""
    web = '#nodes .pod.ready[title^="default/web-"]'
    shot = tmp_path / "dashboard.png"
    try:
        with (
            in_netns(lab.netns()),
            dashboard(lab, tmp_path / "dashboard.log") as url,
            browser.chromium(tmp_path / "chromium") as page,
        ):
            page.get(url)
            browser.eventually(lambda: browser.text(page, "conn") == "live", "the event stream")
            browser.eventually(
                lambda: (
                    all(f"lab-{i}" in browser.text(page, "nodes") for i in (1, 2, 3))
                    and "NotReady" not in browser.text(page, "nodes")
                ),
                "the lab's three nodes, Ready",
            )
            browser.eventually(lambda: browser.count(page, web) == 3, "the demo's 3 web pods")
            assert browser.count(page, '#nodes .pod[title^="default/client:"]') == 1
            assert "web" in browser.text(page, "workloads")

            lab.kubectl("scale", "deploy/web", "--replicas=5")
            browser.eventually(
                lambda: browser.count(page, web) == 5, "five ready web pods on the page", 60
            )
            assert browser.count(page, '#workloads .pod[title^="default/web-"]') == 5
            assert "ScalingReplicaSet" in browser.text(page, "timeline")
            browser.eventually(
                lambda: browser.endpoints(page, "Service/default/web") == 5,
                "the Service's five endpoints",
            )
            # a pod selected: its spec beside its status
            browser.click(page, '#nodes .pod[title^="default/client:"]')
            browser.eventually(
                lambda: '"phase": "Running"' in browser.text(page, "detail-status"),
                "the client pod's status",
            )
            assert "busybox" in browser.text(page, "detail-spec")
            # the Deployment's detail: the code that last decided about it, from the trace
            browser.click(page, '#workloads [data-key="Deployment/default/web"]')
            browser.eventually(
                lambda: "controllers.deployment:decide" in browser.text(page, "detail-decide"),
                "the Deployment controller's decide in the detail",
            )

            # Pause from the page, scale back: the loops hold; one step lets one through.
            browser.click(page, "#btn-pause")
            browser.eventually(lambda: loop_control(lab).get("mode") == "pause", "paused")
            browser.eventually(lambda: "paused" in browser.text(page, "loop-state"), "shown")
            granted = int(loop_control(lab).get("granted") or 0)
            lab.kubectl("scale", "deploy/web", "--replicas=3")
            browser.click(page, "#btn-step")
            browser.eventually(
                lambda: int(loop_control(lab).get("granted") or 0) == granted + 1,
                "a loop took the step",
            )
            browser.eventually(
                lambda: "last step:" in browser.text(page, "last-step"), "the step on the page"
            )
            page.save_screenshot(str(shot))
            print(f"screenshot: {shot}")
            browser.click(page, "#btn-resume")
            browser.eventually(lambda: loop_control(lab).get("mode") == "run", "running again")
            field = page.find_element("id", "slow-seconds")
            field.clear()
            field.send_keys("1.5")
            browser.click(page, "#btn-slow")
            browser.eventually(lambda: loop_control(lab).get("slow") == "1.5s", "slow motion")
            browser.eventually(
                lambda: "slow 1.5s" in browser.text(page, "loop-state"), "slow motion shown"
            )
    finally:  # the loop control is cluster-wide: the later tests need the loops running
        lab.kubectl("delete", "configmap", "skiff-loop-control", "-n", "kube-system",
                    "--ignore-not-found", check=False)  # fmt: skip
        lab.kubectl("scale", "deploy/web", "--replicas=3", check=False)
    assert shot.stat().st_size > 10_000

    def settled() -> bool:
        pods = web_pods(lab)
        return len(pods) == 3 and all(ready(p) for p in pods)

    lab.wait("the demo back at 3 web pods", settled, timeout=120)


@pytest.fixture(scope="module")
def workloads(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """tests/e2e/lab_workloads.py's Jobs, CronJob, DaemonSet and StatefulSet, in their own
    namespace on this lab while it still has its three nodes (one lab up and down fewer)."""
    lab_workloads.apply(lab, tmp_path_factory.mktemp("workloads"))
    return lab


def test_job_runs_to_completion(workloads: Any) -> None:
    lab_workloads.check_job_runs_to_completion(workloads)


def test_daemonset_has_one_pod_on_each_node(workloads: Any) -> None:
    lab_workloads.check_daemonset_has_one_pod_on_each_node(workloads)


def test_cronjob_job_made_by_hand_completes(workloads: Any) -> None:
    lab_workloads.check_cronjob_job_made_by_hand_completes(workloads)


def test_statefulset_comes_up_in_order_with_claims(workloads: Any) -> None:
    lab_workloads.check_statefulset_comes_up_in_order_with_claims(workloads)


def test_statefulset_pods_resolve_each_other_through_cluster_dns(workloads: Any) -> None:
    lab_workloads.check_statefulset_pods_resolve_each_other_through_cluster_dns(workloads)


def test_deleted_statefulset_pod_comes_back_with_its_data(workloads: Any) -> None:
    lab_workloads.check_deleted_statefulset_pod_comes_back_with_its_data(workloads)


def test_cronjob_controller_fires_on_its_own(workloads: Any) -> None:
    try:
        lab_workloads.check_cronjob_controller_fires_on_its_own(workloads)
    finally:
        # The tests below stop a node and join more: without a CronJob firing every
        # minute and a DaemonSet on every node, as on a lab of their own.
        workloads.kubectl("delete", "namespace", lab_workloads.NS, "--wait=false")


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
    # `rollout status` ends when the old pods are terminating, as in Kubernetes; each
    # proxy drops them from the Service once their EndpointSlice says so, a moment
    # later (they still serve meanwhile: no request failed above).
    eventually(
        lambda: "Hello again" in fetch(lab, "http://web/"),
        30,
        "the Service to reach only the new pods",
        interval=0.5,
    )


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


def guide_blocks(needs: str) -> list[tuple[str, str]]:
    from tests.e2e.test_study_guide import GUIDE, blocks

    return [(block_id, commands) for block_id, n, commands in blocks(GUIDE) if n == needs]


def test_stopped_node_loses_its_pods_and_comes_back(lab: Any) -> None:
    """The study guide's "kill a node" exercise, run as written in `skiff lab shell`:
    it stops a worker that does not run the client (not lab-1 either: the control plane
    stays), waits for the web pods to move and starts the worker again."""
    (block_id, commands), *more = guide_blocks("lab")
    assert not more, "one lab exercise in the guide: run the others here too"
    client_node = lab.get("pod", "client")["spec"]["nodeName"]
    victim = next(n for n in ("lab-2", "lab-3") if n != client_node)  # the guide's choice
    assert any(p["spec"]["nodeName"] == victim for p in web_pods(lab))
    result = lab.shell(commands)
    print(f"--- {block_id}\n{result.stdout}")
    assert result.returncode == 0, (
        f"guide block {block_id} failed ({result.returncode}):\n{commands}\n--- stdout\n"
        f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}\n{lab.logs()}"
    )
    assert f"stopping {victim}" in result.stdout
    assert "TaintManagerEviction" in result.stdout

    def replaced() -> bool:
        pods = [p for p in web_pods(lab) if ready(p) and p["spec"]["nodeName"] != victim]
        return len(pods) == 3

    lab.wait(f"3 web pods Ready off {victim}", replaced, timeout=60)
    if (ROOT / "proxy" / "__main__.py").exists():
        ip = lab.get("service", "web")["spec"]["clusterIP"]
        for _ in range(4):  # (the page may be the rolled-out one by now)
            assert "served by busybox httpd" in fetch(lab, f"http://{ip}/")
    lab.wait(f"{victim} Ready again", lambda: lab.ready_nodes()[victim], timeout=60)


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
