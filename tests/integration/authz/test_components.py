"""The scheduler and the controller-manager run with their own identities
(kubeconfigs/scheduler.kubeconfig, kubeconfigs/controller-manager.kubeconfig,
written by the apiserver) and their bootstrap roles are enough for their work,
and no more than it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ApiServerProcess, ComponentProcess

from .conftest import eventually

FAST = (
    "--leader-elect-lease-duration",
    "4",
    "--leader-elect-renew-deadline",
    "3",
    "--leader-elect-retry-period",
    "1",
)
RBAC = "/apis/rbac.authorization.k8s.io/v1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, httpx.Client]]:
    """One apiserver, scheduler and controller-manager for the module: the tests use
    names of their own (node-a, namespaces fresh and gone, the role widgets-view)."""
    base = tmp_path_factory.mktemp("components")
    server = ApiServerProcess(base / "apiserver")
    components: list[ComponentProcess] = []
    try:
        server.start()
        configs = server.state_dir / "kubeconfigs"
        for module, config in (("scheduler", "scheduler"), ("controllers", "controller-manager")):
            component = ComponentProcess(
                module, configs / f"{config}.kubeconfig", base / f"{module}.log", *FAST
            )
            components.append(component.start())
        with server.client() as api:
            yield server, api
    finally:
        for component in components:
            component.stop()
        server.stop()


def user_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["name"])


def add_node(api: httpx.Client, name: str) -> None:
    made = api.post("/api/v1/nodes", json={"metadata": {"name": name}})
    assert made.status_code == 201, made.text
    node = made.json()
    node["status"] = {
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert api.put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200


def test_components_have_their_own_names_not_masters(cluster: tuple[Any, httpx.Client]) -> None:
    server, _ = cluster
    configs = server.state_dir / "kubeconfigs"
    assert user_of(configs / "scheduler.kubeconfig") == "system:kube-scheduler"
    assert user_of(configs / "controller-manager.kubeconfig") == "system:kube-controller-manager"
    assert user_of(configs / "kube-proxy.kubeconfig") == "system:kube-proxy"
    assert user_of(configs / "kubelet.kubeconfig").startswith("system:node:")
    for name in ("scheduler", "controller-manager", "kube-proxy", "kubelet"):
        text = (configs / f"{name}.kubeconfig").read_text()
        assert "token" not in yaml.safe_load(text)["users"][0]["user"]
    scheduler = server.kubectl(
        "--kubeconfig",
        str(configs / "scheduler.kubeconfig"),
        "auth",
        "can-i",
        "list",
        "secrets",
        "-A",
        check=False,
    )
    assert scheduler.startswith("no")
    claims = server.kubectl(
        "--kubeconfig",
        str(configs / "scheduler.kubeconfig"),
        "auth",
        "can-i",
        "patch",
        "persistentvolumeclaims",  # selected-node of a WaitForFirstConsumer claim
        "-n",
        "default",
        check=False,
    )
    assert claims.startswith("yes")
    proxy = server.kubectl(
        "--kubeconfig",
        str(configs / "kube-proxy.kubeconfig"),
        "auth",
        "can-i",
        "watch",
        "endpointslices.discovery.k8s.io",
        "-A",
        check=False,
    )
    assert proxy.startswith("yes")
    proxy_pods = server.kubectl(
        "--kubeconfig",
        str(configs / "kube-proxy.kubeconfig"),
        "auth",
        "can-i",
        "create",
        "pods",
        "-n",
        "default",
        check=False,
    )
    assert proxy_pods.startswith("no")


def test_deployment_runs_under_component_identities(cluster: tuple[Any, httpx.Client]) -> None:
    _server, api = cluster
    add_node(api, "node-a")
    labels = {"app": "web"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    assert api.post("/apis/apps/v1/namespaces/default/deployments", json=body).status_code == 201

    def scheduled() -> list[str]:
        pods = api.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=web"})
        items = pods.json()["items"]
        return [p["spec"].get("nodeName", "") for p in items if p["spec"].get("nodeName")]

    assert eventually(lambda: len(scheduled()) == 3, timeout=60, what="3 scheduled pods")
    assert set(scheduled()) == {"node-a"}
    # Both leaders hold their Lease under their own names.
    leases = api.get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases").json()
    names = {lease["metadata"]["name"] for lease in leases["items"]}
    assert {"kube-scheduler", "kube-controller-manager"} <= names
    # The namespace controller empties a namespace under its identity.
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": "gone"}}).status_code == 201
    cm = {"metadata": {"name": "x"}, "data": {"a": "b"}}
    assert api.post("/api/v1/namespaces/gone/configmaps", json=cm).status_code == 201
    assert api.delete("/api/v1/namespaces/gone").status_code == 200
    eventually(
        lambda: api.get("/api/v1/namespaces/gone").status_code == 404,
        timeout=60,
        what="namespace removed",
    )


def test_admin_edit_view_grow_with_labelled_roles(cluster: tuple[Any, httpx.Client]) -> None:
    _, api = cluster
    role = {
        "metadata": {
            "name": "widgets-view",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
        },
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}],
    }
    assert api.post(f"{RBAC}/clusterroles", json=role).status_code == 201
    rule = role["rules"][0]

    def has(name: str) -> bool:
        return rule in (api.get(f"{RBAC}/clusterroles/{name}").json().get("rules") or [])

    # view aggregates it; edit aggregates view's label set and admin edit's.
    eventually(lambda: has("view"), what="view aggregated the new role")
    assert has("view")
    role["metadata"]["labels"] = {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}
    current = api.get(f"{RBAC}/clusterroles/widgets-view").json()
    current["metadata"]["labels"] = role["metadata"]["labels"]
    assert api.put(f"{RBAC}/clusterroles/widgets-view", json=current).status_code == 200
    eventually(lambda: has("edit") and has("admin") and not has("view"), what="moved to edit")


def test_every_namespace_gets_kube_root_ca(cluster: tuple[Any, httpx.Client]) -> None:
    server, api = cluster
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": "fresh"}}).status_code == 201
    url = "/api/v1/namespaces/fresh/configmaps/kube-root-ca.crt"
    found = eventually(lambda: api.get(url).status_code == 200 and api.get(url).json(), what="CA")
    assert found["data"]["ca.crt"] == server.ca.read_text()
    # Changed by someone: put back.
    found["data"]["ca.crt"] = "not a CA"
    assert api.put(url, json=found).status_code == 200
    eventually(lambda: api.get(url).json()["data"]["ca.crt"] == server.ca.read_text(), what="fix")
    assert api.delete(url).status_code == 200
    eventually(lambda: api.get(url).status_code == 200, what="recreated")


CONTROLLER_WRITES = [
    ("create", "controllerrevisions.apps"),  # DaemonSet and StatefulSet history
    ("patch", "daemonsets.apps", "--subresource=status"),
    ("update", "statefulsets.apps", "--subresource=status"),
    ("update", "jobs.batch", "--subresource=status"),
    ("create", "jobs.batch"),  # the CronJob controller
    ("patch", "cronjobs.batch", "--subresource=status"),
    ("create", "persistentvolumeclaims"),  # volumeClaimTemplates
    ("update", "persistentvolumes", "--subresource=status"),  # the PV binder
    ("update", "horizontalpodautoscalers.autoscaling", "--subresource=status"),
]


def test_controller_manager_may_write_what_its_controllers_write(
    cluster: tuple[Any, httpx.Client],
) -> None:
    server, _ = cluster
    configs = server.state_dir / "kubeconfigs"
    refused = []
    for verb_resource in CONTROLLER_WRITES:
        out = server.kubectl(
            "--kubeconfig",
            str(configs / "controller-manager.kubeconfig"),
            "auth",
            "can-i",
            *verb_resource,
            "-n",
            "default",
            check=False,
        )
        if not out.startswith("yes"):
            refused.append((verb_resource, out.strip()))
    assert not refused
