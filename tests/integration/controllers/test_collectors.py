"""The garbage collectors against a real apiserver and controller-manager, driven with
the real kubectl: foreground deletion of any kind finishes, and pods left on a deleted
Node are removed (issue 15)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.polling import eventually


@pytest.fixture
def server(control_plane: tuple[Any, Any], kubectl_binary: str) -> Any:
    server, _ = control_plane
    server.kubectl_binary = kubectl_binary
    return server


def test_foreground_delete_of_a_configmap_finishes(server: Any) -> None:
    ns = f"fg-{uuid.uuid4().hex[:8]}"
    server.kubectl("create", "namespace", ns)
    server.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=a=1")
    # kubectl waits for the object to be gone; it fails if the finalizer stays.
    out = server.kubectl(
        "delete", "configmap", "cfg", "-n", ns, "--cascade=foreground", "--timeout=45s"
    )
    assert 'configmap "cfg" deleted' in out
    assert "NotFound" in server.kubectl("get", "configmap", "cfg", "-n", ns, check=False)
    server.kubectl("delete", "namespace", ns, "--wait=false")


def test_foreground_delete_of_a_namespace_finishes(server: Any) -> None:
    ns = f"fg-{uuid.uuid4().hex[:8]}"
    server.kubectl("create", "namespace", ns)
    server.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=a=1")
    out = server.kubectl("delete", "namespace", ns, "--cascade=foreground", "--timeout=50s")
    assert f'namespace "{ns}" deleted' in out
    assert "NotFound" in server.kubectl("get", "namespace", ns, check=False)


def test_pods_of_a_deleted_node_are_collected(control_plane: tuple[Any, Any]) -> None:
    """With the default kubectl only: the wait is the Node's 40 s quarantine, and what
    kubectl sends here (create, delete, get) the other tests cover with both."""
    server, _ = control_plane
    ns = f"podgc-{uuid.uuid4().hex[:8]}"
    node = f"gone-{uuid.uuid4().hex[:8]}"
    server.kubectl("create", "namespace", ns)
    server.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stranded", "namespace": ns},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    server.kubectl("create", "-f", "-", input=json.dumps(pod))
    # No kubelet will ever confirm the end: the delete leaves the pod Terminating.
    server.kubectl("delete", "pod", "stranded", "-n", ns, "--wait=false")
    got = json.loads(server.kubectl("get", "pod", "stranded", "-n", ns, "-o", "json"))
    assert got["metadata"]["deletionTimestamp"]
    server.kubectl("delete", "node", node)

    def gone() -> bool:
        return "NotFound" in server.kubectl("get", "pod", "stranded", "-n", ns, check=False)

    # After the Node's quarantine (40 s, as Kubernetes' podgc), not at once.
    eventually(gone, timeout=120, what="the pod of the deleted node to be collected")
    server.kubectl("delete", "namespace", ns, "--wait=false")


def test_events_name_the_controller_that_recorded_them(server: Any) -> None:
    """`kubectl describe`'s From column: deployment-controller, replicaset-controller."""
    ns = f"ev-{uuid.uuid4().hex[:8]}"
    server.kubectl("create", "namespace", ns)
    server.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx:1.25")

    def sources() -> dict[str, str]:
        events = json.loads(server.kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
        found = {e["reason"]: e["source"]["component"] for e in events}
        return found if {"ScalingReplicaSet", "SuccessfulCreate"} <= set(found) else {}

    found = eventually(sources, what="the deployment's and replicaset's events")
    assert found["ScalingReplicaSet"] == "deployment-controller"
    assert found["SuccessfulCreate"] == "replicaset-controller"
    described = server.kubectl("describe", "deployment", "web", "-n", ns)
    assert "deployment-controller" in described
    server.kubectl("delete", "namespace", ns, "--wait=false")
