"""Seeing the loops (issue 16) against a real apiserver (real etcd), the real
controller-manager and the real scheduler; nodes are Node objects only.

The reconcile trace of a Deployment's chain, `skiff explain`, and loop control
(pause, step, resume) as a user drives them with the `skiff` command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FAST_ELECTION, ApiServerProcess, ComponentProcess
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[3]
MERGE = {"Content-Type": "application/merge-patch+json"}


class Cluster:
    def __init__(self, server: Any, api: httpx.Client, ns: str) -> None:
        self.server, self.api, self.ns = server, api, ns

    def skiff(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "cli", *args, "--kubeconfig", str(self.server.kubeconfig)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        if check:
            assert r.returncode == 0, r.stderr + r.stdout
        return r.stdout + r.stderr

    def pods(self, app: str) -> list[dict[str, Any]]:
        items = self.api.get(
            f"/api/v1/namespaces/{self.ns}/pods", params={"labelSelector": f"app={app}"}
        ).json()["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def replicaset_of(self, app: str) -> dict[str, Any] | None:
        items = self.api.get(
            f"/apis/apps/v1/namespaces/{self.ns}/replicasets",
            params={"labelSelector": f"app={app}"},
        ).json()["items"]
        return items[0] if items else None


def add_node(api: httpx.Client, name: str, cpu: str) -> None:
    body = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}
    made = api.post("/api/v1/nodes", json=body)
    assert made.status_code == 201, made.text
    node = made.json()
    node["status"] = {
        "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert api.put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200


def deployment(name: str, replicas: int, cpu: str = "100m") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
                    ]
                },
            },
        },
    }


@pytest.fixture(scope="module")
def control_plane_of_two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One apiserver, controller-manager and scheduler with the nodes small and big for the
    module (one per test cost a control plane each); the tests keep to namespaces of
    their own."""
    base = tmp_path_factory.mktemp("trace-and-loops")
    server = ApiServerProcess(base / "apiserver")
    components = [
        ComponentProcess(
            "controllers",
            server.kubeconfig,
            base / "controllers.log",
            *FAST_ELECTION,
            "--controllers",
            "deployment,replicaset,garbagecollector,endpoints",
        ),
        ComponentProcess("scheduler", server.kubeconfig, base / "scheduler.log", *FAST_ELECTION),
    ]
    try:
        server.start()
        for component in components:
            component.start()
        with server.client() as api:
            add_node(api, "small", "1")
            add_node(api, "big", "8")
        yield server
    finally:
        for component in components:
            component.stop()
        server.stop()


@pytest.fixture
def cluster(control_plane_of_two_nodes: Any) -> Iterator[Cluster]:
    server = control_plane_of_two_nodes
    with server.client() as api:
        ns = f"see-{uuid.uuid4().hex[:6]}"
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
        yield Cluster(server, api, ns)


def test_trace_and_explain_follow_a_deployments_chain(cluster: Cluster) -> None:
    api, ns = cluster.api, cluster.ns
    made = api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment("web", 2))
    assert made.status_code == 201, made.text
    eventually(
        lambda: len([p for p in cluster.pods("web") if p["spec"].get("nodeName")]) == 2,
        what="two pods bound",
    )
    rs = cluster.replicaset_of("web")
    assert rs is not None
    rs_name = rs["metadata"]["name"]

    # The trace, as JSON: the Deployment's decision, the ReplicaSet's, the scheduler's.
    def records() -> list[dict[str, Any]]:
        out = cluster.skiff("trace", "-n", ns, "-o", "json")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def chain() -> list[dict[str, Any]] | None:
        got = records()
        kinds = {(r["kind"], r["decide"]) for r in got}
        want = {
            ("Deployment", "controllers.deployment:decide"),
            ("ReplicaSet", "controllers.replicaset:decide"),
            ("Pod", "scheduler.framework:schedule"),
        }
        # Both pods' binds: the scheduler's records are flushed in batches (at most
        # one write per 2 s), so the second pod's may come a flush after the first's.
        bound = {r["name"] for r in got if r["controller"] == "scheduler"}
        pods = {p["metadata"]["name"] for p in cluster.pods("web")}
        return got if want <= kinds and bound >= pods else None

    got = eventually(chain, what="trace records for the Deployment, ReplicaSet and both pods")
    create_rs = next(r for r in got if r["kind"] == "Deployment" and r["actions"])
    assert any("CreateReplicaSet" in a["action"] for a in create_rs["actions"])
    assert any(
        call.startswith("POST apps/v1 ReplicaSet")
        for a in create_rs["actions"]
        for call in a["calls"]
    )
    binds = [r for r in got if r["controller"] == "scheduler"]
    assert {b["name"] for b in binds} == {p["metadata"]["name"] for p in cluster.pods("web")}
    for b in binds:
        assert b["details"]["filters"]["big"], b  # each node's filter verdicts are kept
        assert "NodeResourcesFit" in b["details"]["scores"]["big"]
        assert set(b["details"]["scores"]["big"]["NodeResourcesFit"]) == {
            "raw",
            "normalized",
            "weighted",
        }

    # The text filters: only the ReplicaSet's records.
    text = cluster.skiff("trace", "-n", ns, "--object", f"replicaset/{rs_name}")
    assert "CreatePods" in text and "controllers.replicaset:decide" in text
    assert "Deployment" not in text.split("\n")[0]

    # skiff explain deployment/web names the ReplicaSet, the pods and why each node.
    explained = cluster.skiff("explain", "deployment/web", "-n", ns)
    assert f"ReplicaSet {rs_name}" in explained
    for pod in cluster.pods("web"):
        assert f"Pod {pod['metadata']['name']}" in explained
    assert "why that node" in explained and "passed the filters" in explained
    assert "ScalingReplicaSet" in explained  # the Event on the Deployment

    # skiff explain pod/x: where it landed, and each node's verdicts and scores.
    pod = cluster.pods("web")[0]
    text = cluster.skiff("explain", f"pod/{pod['metadata']['name']}", "-n", ns)
    assert f"scheduled to {pod['spec']['nodeName']}" in text.split("\n")[0]
    assert "<- chosen" in text
    assert "small:" in text and "big:" in text
    assert "NodeResourcesFit" in text and "normalized" in text and "weighted" in text


def test_explain_says_why_a_pod_is_pending(cluster: Cluster) -> None:
    api, ns = cluster.api, cluster.ns
    made = api.post(
        f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment("huge", 1, cpu="16")
    )
    assert made.status_code == 201, made.text
    pod = eventually(lambda: (cluster.pods("huge") or [None])[0], what="the pod")
    name = pod["metadata"]["name"]

    def explained() -> str | None:
        text = cluster.skiff("explain", f"pod/{name}", "-n", ns)
        return text if "filtered out by" in text else None

    text = eventually(explained, what="the scheduler's verdicts in skiff explain")
    assert "Pending because the scheduler found no node" in text
    assert "0/2 nodes are available: 2 Insufficient cpu." in text
    assert "small: filtered out by NodeResourcesFit: Insufficient cpu" in text
    assert "big: filtered out by NodeResourcesFit: Insufficient cpu" in text
    assert "FailedScheduling" in text  # the Event, as kubectl describe shows it


def test_pause_holds_a_scale_up_until_step_and_resume(cluster: Cluster) -> None:
    api, ns = cluster.api, cluster.ns
    made = api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment("slow", 1))
    assert made.status_code == 201, made.text
    eventually(lambda: len(cluster.pods("slow")) == 1, what="one pod")
    eventually(
        lambda: ((cluster.replicaset_of("slow") or {}).get("status") or {}).get("replicas") == 1,
        what="the ReplicaSet counted its pod",
    )

    try:
        out = cluster.skiff("loop", "pause", "--only", "replicaset")
        assert "mode: pause" in out and "replicaset" in out
        cm = api.get("/api/v1/namespaces/kube-system/configmaps/skiff-loop-control").json()
        assert cm["data"]["mode"] == "pause"

        r = api.patch(
            f"/apis/apps/v1/namespaces/{ns}/deployments/slow",
            json={"spec": {"replicas": 3}},
            headers=MERGE,
        )
        assert r.status_code == 200, r.text
        # The Deployment controller is not paused: it scales the ReplicaSet up ...
        eventually(
            lambda: (cluster.replicaset_of("slow") or {}).get("spec", {}).get("replicas") == 3,
            what="the ReplicaSet's spec at 3",
        )
        # ... and the paused ReplicaSet controller holds its create: one step lets it through.
        assert len(cluster.pods("slow")) == 1
        stepped = cluster.skiff("loop", "step")
        assert "replicaset: CreatePods(count=2)" in stepped, stepped
        eventually(lambda: len(cluster.pods("slow")) == 3, what="the two stepped pods")
        # The next action (the status write) is held until resume.
        status = (cluster.replicaset_of("slow") or {}).get("status") or {}
        assert status.get("replicas") == 1
        cluster.skiff("loop", "resume")
        eventually(
            lambda: (
                ((cluster.replicaset_of("slow") or {}).get("status") or {}).get("replicas") == 3
            ),
            what="the status written after resume",
        )
        # The controller-manager kept its lease while paused (it still leads).
        lease = api.get(
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"
        ).json()
        assert lease["spec"].get("holderIdentity")
    finally:
        # (once more, should an assert above have failed: the module's next tests share
        # this controller-manager)
        cluster.skiff("loop", "resume", check=False)


def test_trace_watch_prints_new_records_as_they_come(cluster: Cluster) -> None:
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "trace",
            "-w",
            "--component",
            "scheduler",
            "-n",
            cluster.ns,
            "--kubeconfig",
            str(cluster.server.kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        made = cluster.api.post(
            f"/apis/apps/v1/namespaces/{cluster.ns}/deployments", json=deployment("live", 1)
        )
        assert made.status_code == 201, made.text
        pod = eventually(
            lambda: next((p for p in cluster.pods("live") if p["spec"].get("nodeName")), None),
            what="the pod bound",
        )
        assert watcher.stdout is not None
        deadline = time.monotonic() + 40
        seen = ""
        while time.monotonic() < deadline and pod["metadata"]["name"] not in seen:
            seen += watcher.stdout.readline()
        assert f"scheduler/scheduler Pod {cluster.ns}/{pod['metadata']['name']}" in seen, seen
        rest = "".join(watcher.stdout.readline() for _ in range(3))  # saw/wanted, action, call
        assert f"Bind(node='{pod['spec']['nodeName']}')" in rest, rest
        assert "POST v1 Pod" in rest and "(binding)" in rest
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
