"""A pod's service-account token on a real node: projected by the kubelet (token,
ca.crt, namespace) at /var/run/secrets/kubernetes.io/serviceaccount, with
KUBERNETES_SERVICE_HOST/PORT, and good for exactly what its ServiceAccount may do.

The official Python client reads the pod's files with its in-cluster loader
(`load_incluster_config`'s code path) from the node, since the test node runs no
Python image and no service proxy for pods to reach the apiserver's ClusterIP."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import Node, busybox, create, make_pod, status_of, wait_for

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_pod(node: Node, ns: str, pod: str, *command: str) -> str:
    return node.kubectl("exec", "-n", ns, pod, "--", *command)


def test_the_pods_token_is_its_service_accounts(node: Node, ns: str, tmp_path: Path) -> None:
    pytest.importorskip("kubelet.server")
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.config.incluster_config import InClusterConfigLoader

    with node.api() as api:
        made = api.post(
            f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "reader"}}
        )
        assert made.status_code == 201, made.text
        binding = {
            "metadata": {"name": "reader-view"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        }
        url = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
        assert api.post(url, json=binding).status_code == 201
    create(node, ns, make_pod("app", busybox("c"), serviceAccountName="reader"))
    create(node, ns, make_pod("quiet", busybox("c"), automountServiceAccountToken=False))
    for name in ("app", "quiet"):
        wait_for(lambda n=name: status_of(node, ns, n).get("phase") == "Running", f"{name} Running")

    token = in_pod(node, ns, "app", "cat", f"{MOUNT}/token")
    assert in_pod(node, ns, "app", "cat", f"{MOUNT}/namespace") == ns
    ca = in_pod(node, ns, "app", "cat", f"{MOUNT}/ca.crt")
    assert ca == node.server.ca.read_text()
    part = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{ns}:reader"
    assert claims["kubernetes.io"]["pod"]["name"] == "app"
    env = dict(
        line.split("=", 1) for line in in_pod(node, ns, "app", "env").splitlines() if "=" in line
    )
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    probe = f"test -e {MOUNT}/token && echo mounted || echo absent"
    assert in_pod(node, ns, "quiet", "sh", "-c", probe).strip() == "absent"
    assert in_pod(node, ns, "app", "sh", "-c", probe).strip() == "mounted"

    # The official client, loading the pod's files as in a pod, against the apiserver.
    (tmp_path / "token").write_text(token)
    (tmp_path / "ca.crt").write_text(ca)
    port = node.server.url.rsplit(":", 1)[1]
    loader = InClusterConfigLoader(
        token_filename=str(tmp_path / "token"),
        cert_filename=str(tmp_path / "ca.crt"),
        environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port},
    )
    config = kubernetes.client.Configuration()
    loader.load_and_set(config)
    with kubernetes.client.ApiClient(config) as client:
        core = kubernetes.client.CoreV1Api(client)
        names = {p.metadata.name for p in core.list_namespaced_pod(ns).items}
        assert {"app", "quiet"} <= names
        for forbidden in (
            lambda: core.list_namespaced_secret(ns),
            lambda: core.list_namespaced_pod("default"),
        ):
            try:
                forbidden()
                raise AssertionError("the token did more than view in its namespace")
            except kubernetes.client.ApiException as e:
                assert e.status == 403
                assert f"system:serviceaccount:{ns}:reader" in json.loads(e.body)["message"]
    # When the pod goes, so does its token.
    with node.api() as api:
        api.delete(f"/api/v1/namespaces/{ns}/pods/app?gracePeriodSeconds=0")

        def refused() -> Any:
            with kubernetes.client.ApiClient(config) as client:
                try:
                    kubernetes.client.CoreV1Api(client).list_namespaced_pod(ns)
                except kubernetes.client.ApiException as e:
                    return e.status == 401
            return False

        wait_for(refused, "the token to die with its pod")
