"""The kubelet with its own identity (system:node:<name>, group system:nodes), not
the admin's: it registers its Node, renews its Lease, runs pods with their Secrets,
ConfigMaps and service-account tokens — reading only what its pods use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import Node, busybox, create, make_pod, one_node, status_of, wait_for


@pytest.fixture(scope="module")
def own_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with one_node(tmp_path_factory.mktemp("own-node"), own_identity=True) as n:
        yield n


def test_kubelet_runs_pods_as_its_node(own_node: Node) -> None:
    node = own_node
    assert "system:node:" in node.kubelet.kubeconfig.read_text()
    ns = "default"
    with node.api() as api:
        secret = {"metadata": {"name": "db"}, "stringData": {"password": "s3cret"}}
        assert api.post(f"/api/v1/namespaces/{ns}/secrets", json=secret).status_code == 201
        cm = {"metadata": {"name": "settings"}, "data": {"colour": "blue"}}
        assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm).status_code == 201
        other = {"metadata": {"name": "unrelated"}, "stringData": {"x": "y"}}
        assert api.post(f"/api/v1/namespaces/{ns}/secrets", json=other).status_code == 201
    container = busybox(
        "c",
        env=[
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
        ],
        volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}],
    )
    create(
        node,
        ns,
        make_pod("app", container, volumes=[{"name": "cfg", "configMap": {"name": "settings"}}]),
    )
    wait_for(
        lambda: status_of(node, ns, "app").get("phase") == "Running", "the pod to run", timeout=90
    )
    env = node.kubectl("exec", "-n", ns, "app", "--", "env")
    assert "PASSWORD=s3cret" in env
    assert node.kubectl("exec", "-n", ns, "app", "--", "cat", "/cfg/colour") == "blue"
    token = node.kubectl(
        "exec", "-n", ns, "app", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )
    assert token.count(".") == 2
    log = (node.base / "kubelet.log").read_text()
    assert "reading Secrets and ConfigMaps one by one" in log
    audit = (node.server.log).read_text()
    assert '"user":"system:node:' in audit
    # It never listed Secrets: the apiserver's access log shows only gets by name.
    lines = [ln for ln in audit.splitlines() if '"user":"system:node:' in ln and "/secrets" in ln]
    assert lines and all('"verb":"get"' in ln for ln in lines)
    assert not any("/secrets/unrelated" in ln for ln in lines)
