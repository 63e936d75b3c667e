"""`skiff dashboard` in a real headless Chromium (Debian's chromium, driven by Selenium
through Debian's chromedriver) against a real apiserver and controller-manager.

Hollow nodes: two Node objects made as plain objects; a thread acts as their
kubelets (renews their Leases, binds each pending pod to a node through
pods/binding, reports it Running and Ready). The page must show the nodes with
their pods, five pods after `kubectl scale deploy/web --replicas=5`, and its
Pause and Step buttons must write the loop-control ConfigMap. The screenshot is
kept under the test's tmp dir (dashboard.png).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.integration.controllers.test_workloads import eventually, pods, set_phase

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (scripts/install.sh installs them)",
)

LOOP = "/api/v1/namespaces/kube-system/configmaps/skiff-loop-control"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_status(i: int) -> dict[str, Any]:
    now = _now()[:19] + "Z"
    return {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": f"127.0.0.{10 + i}"}],
    }  # fmt: skip


def ready_condition(node: dict[str, Any]) -> dict[str, Any]:
    conditions = (node.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


class HollowNodes:
    """Kubelets in name only: leases renewed, pending pods bound and reported Ready."""

    def __init__(self, cp: httpx.Client, ns: str, names: list[str]) -> None:
        self.cp, self.ns, self.names = cp, ns, names
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._next = 0
        self._ips = 0

    def _renew(self, node: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        lease = self.cp.get(path)
        if lease.status_code == 404:
            body = {"metadata": {"name": node},
                    "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                             "renewTime": _now()}}  # fmt: skip
            self.cp.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                         json=body)  # fmt: skip
            return
        obj = lease.json()
        obj["spec"]["renewTime"] = _now()
        self.cp.put(path, json=obj)

    def _report_ready(self, node: str) -> None:
        """What a kubelet's status update does when the node lifecycle controller
        marked the node Unknown before the first lease renewal arrived."""
        obj = self.cp.get(f"/api/v1/nodes/{node}").json()
        if ready_condition(obj).get("status") == "True":
            return
        obj["status"] = node_status(self.names.index(node))
        self.cp.put(f"/api/v1/nodes/{node}/status", json=obj)

    def _give_ip(self, pod: dict[str, Any]) -> None:
        """A pod IP, so the Service's endpoints have addresses (no traffic is sent)."""
        path = f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}/status"
        self._ips += 1
        ip = f"10.244.0.{self._ips}"
        patch = {"status": {"podIP": ip, "podIPs": [{"ip": ip}]}}
        self.cp.patch(path, json=patch,
                      headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for node in self.names:
                    self._renew(node)
                    self._report_ready(node)
                for p in pods(self.cp, self.ns, "app=web"):
                    name = p["metadata"]["name"]
                    if not p["spec"].get("nodeName"):
                        node = self.names[self._next % len(self.names)]
                        self._next += 1
                        body = {
                            "apiVersion": "v1",
                            "kind": "Binding",
                            "metadata": {"name": name},
                            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                        }
                        self.cp.post(f"/api/v1/namespaces/{self.ns}/pods/{name}/binding",
                                     json=body)  # fmt: skip
                    elif p["status"].get("phase") != "Running":
                        set_phase(self.cp, p, "Running")
                        self._give_ip(p)
            except (httpx.HTTPError, AssertionError, KeyError):
                pass
            self._stop.wait(0.3)

    def __enter__(self) -> HollowNodes:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def cluster(control_plane: tuple[Any, Any]) -> Iterator[tuple[Any, httpx.Client, str, list[str]]]:
    server = control_plane[0]
    suffix = uuid.uuid4().hex[:6]
    ns, nodes = f"dash-{suffix}", [f"hollow-a-{suffix}", f"hollow-b-{suffix}"]
    with server.client() as cp:
        assert cp.post("/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
        cp.post("/api/v1/namespaces", json={"metadata": {"name": "kube-node-lease"}})
        for i, node in enumerate(nodes):
            assert cp.post("/api/v1/nodes", json={"metadata": {"name": node}}).status_code == 201
            obj = cp.get(f"/api/v1/nodes/{node}").json()
            obj["status"] = node_status(i)
            assert cp.put(f"/api/v1/nodes/{node}/status", json=obj).status_code == 200
        try:
            yield server, cp, ns, nodes
        finally:
            cp.delete(LOOP)  # the loop control is cluster-wide: leave the loops running
            cp.delete(f"/api/v1/namespaces/{ns}")
            for node in nodes:
                cp.delete(f"/api/v1/nodes/{node}")


@pytest.fixture
def dashboard(cluster: tuple[Any, httpx.Client, str, list[str]], tmp_path: Path) -> Iterator[str]:
    server = cluster[0]
    port = free_port()
    log = open(tmp_path / "dashboard.log", "wb")  # closed in the finalizer
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "dashboard", "--kubeconfig", str(server.kubeconfig),
         "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(up, timeout=30, what="skiff dashboard answering")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)  # fmt: skip
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def click(driver: Any, selector: str) -> None:
    """Click what the selector finds; the page redraws on every watch event, so an
    element found a moment ago may have been replaced: find it again then."""
    from selenium.common.exceptions import StaleElementReferenceException

    def once() -> bool:
        try:
            driver.find_element("css selector", selector).click()
        except StaleElementReferenceException:
            return False
        return True

    eventually(once, timeout=5, what=f"a click on {selector}")


def text(driver: Any, element_id: str) -> str:
    """An element's text; "" when a redraw replaced it just then (the caller polls)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return str(driver.find_element("id", element_id).text)
    except StaleElementReferenceException:
        return ""


def _pods_on_nodes(driver: Any, ns: str, *, ready: bool) -> int:
    selector = f'#nodes .pod{".ready" if ready else ""}[title^="{ns}/"]'
    return len(driver.find_elements("css selector", selector))


def test_the_page_shows_nodes_pods_and_scaling_and_drives_the_loop_control(
    cluster: tuple[Any, httpx.Client, str, list[str]],
    dashboard: str,
    browser: Any,
    tmp_path: Path,
) -> None:
    server, cp, ns, nodes = cluster
    server.kubectl("create", "deployment", "web", "--image=busybox:1.36", "--replicas=2",
                   "-n", ns, "--", "sleep", "3600")  # fmt: skip
    server.kubectl("expose", "deployment", "web", "--port=80", "-n", ns)
    with HollowNodes(cp, ns, nodes):
        eventually(lambda: len([p for p in pods(cp, ns, "app=web")
                                if p["status"].get("phase") == "Running"]) == 2,
                   what="two web pods Running")  # fmt: skip
        browser.get(dashboard)
        eventually(lambda: text(browser, "conn") == "live", timeout=15,
                   what="the page's event stream")  # fmt: skip
        node_text = text(browser, "nodes")
        for node in nodes:
            assert node in node_text
        eventually(lambda: _pods_on_nodes(browser, ns, ready=True) == 2, timeout=10,
                   what="two ready pods inside the node boxes")  # fmt: skip
        assert "web" in text(browser, "workloads")
        eventually(lambda: "NotReady" not in text(browser, "nodes"),
                   timeout=10, what="both nodes Ready on the page")  # fmt: skip

        server.kubectl("scale", "deploy/web", "--replicas=5", "-n", ns)
        eventually(lambda: _pods_on_nodes(browser, ns, ready=True) == 5, timeout=15,
                   what="five ready pods on the page after the scale")  # fmt: skip
        tree = browser.find_element("id", "workloads")
        assert len(tree.find_elements("css selector", f'.pod[title^="{ns}/web-"]')) == 5
        assert "ScalingReplicaSet" in text(browser, "timeline")
        eventually(lambda: text(browser, "services").count("(web-") == 5,
                   timeout=15, what="the Service's five endpoints")  # fmt: skip

        # The reconcile trace joins the timeline, read from a trace ConfigMap in the
        # format client/trace.py writes (one per component, label skiff.io/trace=true).
        trace = f"skiff-trace-dash-test-{ns}"
        record = {"seq": 1, "time": _now(), "component": "controller-manager",
                  "controller": "deployment", "kind": "Deployment", "namespace": ns,
                  "name": "web", "observed": "2 replicas", "wanted": "5 replicas",
                  "actions": [{"action": "ScaleReplicaSet(web, 5)", "calls": [], "error": ""}],
                  "durationMs": 3.2, "outcome": "done",
                  "decide": "controllers.deployment:decide"}  # fmt: skip
        body = {"metadata": {"name": trace, "labels": {"skiff.io/trace": "true"}},
                "data": {"records": json.dumps([record]), "seq": "1"}}  # fmt: skip
        assert cp.post("/api/v1/namespaces/kube-system/configmaps", json=body).status_code == 201
        try:
            eventually(lambda: "ScaleReplicaSet(web, 5)" in
                       text(browser, "timeline"), timeout=10,
                       what="the trace record in the timeline")  # fmt: skip
            click(browser, f'#workloads [data-key="Deployment/{ns}/web"]')
            eventually(lambda: "controllers.deployment:decide" in
                       text(browser, "detail-decide"), timeout=5,
                       what="the code that last decided about the Deployment")  # fmt: skip
            browser.save_screenshot(str(tmp_path / "dashboard-trace.png"))
        finally:
            cp.delete(f"/api/v1/namespaces/kube-system/configmaps/{trace}")

        # Selecting a pod shows its spec beside its status.
        click(browser, f'#nodes .pod[title^="{ns}/"]')
        eventually(lambda: '"phase": "Running"' in
                   text(browser, "detail-status"), timeout=5,
                   what="the selected pod's status")  # fmt: skip
        assert "busybox:1.36" in text(browser, "detail-spec")

        click(browser, "#btn-pause")
        eventually(lambda: cp.get(LOOP).status_code == 200
                   and cp.get(LOOP).json()["data"]["mode"] == "pause", timeout=10,
                   what="the ConfigMap paused")  # fmt: skip
        click(browser, "#btn-step")
        eventually(lambda: cp.get(LOOP).json()["data"]["steps"] == "1", timeout=10,
                   what="one step in the ConfigMap")  # fmt: skip
        eventually(lambda: "paused" in text(browser, "loop-state"),
                   timeout=10, what="the page showing the loops paused")  # fmt: skip
        shot = tmp_path / "dashboard.png"
        browser.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
        click(browser, "#btn-resume")
        eventually(lambda: cp.get(LOOP).json()["data"]["mode"] == "run", timeout=10,
                   what="the ConfigMap running again")  # fmt: skip
        field = browser.find_element("id", "slow-seconds")
        field.clear()
        field.send_keys("1.5")
        click(browser, "#btn-slow")
        eventually(lambda: cp.get(LOOP).json()["data"]["slow"] == "1.5s", timeout=10,
                   what="slow motion in the ConfigMap")  # fmt: skip
        eventually(lambda: "slow 1.5s" in text(browser, "loop-state"), timeout=10,
                   what="the page showing slow motion")  # fmt: skip
    assert shot.stat().st_size > 10_000
