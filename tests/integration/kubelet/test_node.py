"""The node as a whole: registration, heartbeat, a Deployment rolled out with the real
kubectl, static pods, and a kubelet that is killed and comes back."""

from __future__ import annotations

import subprocess

from kubelet.config import POD_UID

from .conftest import (
    NODE,
    Node,
    busybox,
    condition,
    container_status,
    create,
    make_pod,
    status_of,
    wait_for,
)


def test_the_node_registers_with_what_it_has(node: Node) -> None:
    with node.api() as api:
        n = api.get(f"/api/v1/nodes/{NODE}").json()
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
        lease = wait_for(
            lambda: (r := api.get(path)).status_code == 200 and r.json(), "the node Lease"
        )
    status = n["status"]
    assert set(status["capacity"]) >= {"cpu", "memory", "pods", "ephemeral-storage"}
    assert status["capacity"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("skiff://")
    assert info["kubeletVersion"].startswith("v1.32")
    assert info["operatingSystem"] == "linux" and info["kernelVersion"]
    assert any("docker.io/library/busybox:latest" in i["names"] for i in status["images"])
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {
        "Ready": "True",
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
    }
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    out = node.kubectl("get", "nodes")
    assert NODE in out and "Ready" in out


def test_a_deployment_rolls_out(node: Node, ns: str) -> None:
    web = busybox(
        "web",
        "sh",
        "-c",
        "echo ok > /tmp/index.html; httpd -f -p 8080 -h /tmp",
        ports=[{"containerPort": 8080, "name": "http"}],
        readinessProbe={"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                # sh as PID 1 ignores SIGTERM: a short grace period keeps the update brisk
                "spec": {"containers": [web], "terminationGracePeriodSeconds": 1},
            },
        },
    }
    with node.api() as api:
        r = api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment)
        assert r.status_code == 201, r.text

    def rollout_status() -> None:
        result = subprocess.run(
            [
                node.server.kubectl_binary,
                "--kubeconfig",
                str(node.server.kubeconfig),
                "-n",
                ns,
                "rollout",
                "status",
                "deployment/web",
                "--timeout=120s",
            ],
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "successfully rolled out" in result.stdout

    def pods() -> list[str]:
        wide = node.kubectl("get", "pods", "-n", ns, "-o", "wide")
        return [line for line in wide.splitlines()[1:] if line.strip()]

    rollout_status()
    rows = pods()
    assert len(rows) == 3
    assert all(
        "Running" in row and "1/1" in row and NODE in row and "10.244." in row for row in rows
    )
    # A rolling update: a new template, new pods, and the old ones gone.
    node.kubectl("-n", ns, "set", "env", "deployment/web", "VERSION=2")
    rollout_status()
    names = {row.split()[0] for row in rows}
    wait_for(
        lambda: len(p := pods()) == 3 and not names & {r.split()[0] for r in p}, "only new pods"
    )


def test_a_static_pod_runs_and_is_mirrored(node: Node) -> None:
    (node.base / "manifests" / "static.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static\n  namespace: default\n"
        "spec:\n  containers:\n  - name: c\n    image: busybox\n"
        "    imagePullPolicy: IfNotPresent\n    command: [sleep, '3600']\n"
    )
    name = f"static-{NODE}"

    def running_mirror() -> dict | None:
        p = node.pod("default", name)
        return p if p and (p.get("status") or {}).get("phase") == "Running" else None

    mirror = wait_for(running_mirror, "the mirror pod to show the static pod Running")
    assert "kubernetes.io/config.mirror" in mirror["metadata"]["annotations"]
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
    (node.base / "manifests" / "static.yaml").unlink()
    wait_for(lambda: node.pod("default", name) is None, "the mirror pod to go", timeout=60)


def test_a_killed_kubelet_comes_back_without_restarting_anything(node: Node, ns: str) -> None:
    create(node, ns, make_pod("steady", busybox("c")))
    before = wait_for(
        lambda: (c := container_status(node, ns, "steady", "c")).get("ready") and c,
        "the pod to be ready",
    )
    node.kubelet.kill()
    node.start_kubelet()
    # The new kubelet works (it runs a new pod) ...
    create(node, ns, make_pod("after", busybox("c")))
    wait_for(lambda: status_of(node, ns, "after").get("phase") == "Running", "a new pod to run")
    # ... and has restarted nothing: same container, same start, no restart counted.
    after = container_status(node, ns, "steady", "c")
    assert after["containerID"] == before["containerID"]
    assert after["state"] == before["state"]
    assert after["restartCount"] == 0
    assert condition(status_of(node, ns, "steady"), "Ready") == "True"


def test_a_pod_deleted_while_the_kubelet_is_down_is_cleaned_up(node: Node, ns: str) -> None:
    pod = create(node, ns, make_pod("doomed", busybox("c")))
    uid = pod["metadata"]["uid"]
    wait_for(lambda: status_of(node, ns, "doomed").get("phase") == "Running", "Running")
    node.kubelet.kill()
    node.kubectl("delete", "pod", "doomed", "-n", ns, "--grace-period=0", "--force")
    assert any(c.labels.get(POD_UID) == uid for c in node.containers())
    node.start_kubelet()
    wait_for(
        lambda: not any(c.labels.get(POD_UID) == uid for c in node.containers()),
        "the pod's containers to be removed",
        timeout=60,
    )
    # ... and its logs and volumes with them.
    wait_for(lambda: not list((node.base / "pods").glob(f"*_{uid}")), "its logs to go")
    wait_for(lambda: not (node.base / "kubelet" / "pods" / uid).exists(), "its volumes to go")
