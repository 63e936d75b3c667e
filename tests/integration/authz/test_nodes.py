"""The Node authorizer and NodeRestriction: a kubelet's credentials reach only its own."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import yaml

from .conftest import ROOT, Users, eventually, make_namespace


def pod(name: str, node: str, secret: str, configmap: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "env": [
                        {"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}
                    ],
                }
            ],
            "volumes": [{"name": "v", "configMap": {"name": configmap}}],
        },
    }


def test_node_reads_only_what_its_pods_use(api: httpx.Client, users: Users, unique: str) -> None:
    ns = make_namespace(api, f"nodes-{unique}")
    one, two = f"one-{unique}", f"two-{unique}"
    for kind in ("secrets", "configmaps"):
        for n in ("a", "b", "unused"):
            body = {
                "metadata": {"name": n},
                ("data" if kind == "configmaps" else "stringData"): {"k": "v"},
            }
            assert api.post(f"/api/v1/namespaces/{ns}/{kind}", json=body).status_code == 201
    assert (
        api.post(f"/api/v1/namespaces/{ns}/pods", json=pod("pa", one, "a", "a")).status_code == 201
    )
    assert (
        api.post(f"/api/v1/namespaces/{ns}/pods", json=pod("pb", two, "b", "b")).status_code == 201
    )
    node = users.client(f"system:node:{one}", ("system:nodes",))
    eventually(
        lambda: node.get(f"/api/v1/namespaces/{ns}/secrets/a").status_code == 200,
        what="graph of node one",
    )
    assert node.get(f"/api/v1/namespaces/{ns}/configmaps/a").status_code == 200
    denied = node.get(f"/api/v1/namespaces/{ns}/secrets/b")
    assert denied.status_code == 403
    assert denied.json()["message"].endswith(
        f"no relationship found between node '{one}' and this object"
    )
    assert node.get(f"/api/v1/namespaces/{ns}/configmaps/b").status_code == 403
    assert node.get(f"/api/v1/namespaces/{ns}/secrets/unused").status_code == 403
    assert node.get(f"/api/v1/namespaces/{ns}/secrets").status_code == 403
    # Its local-path provisioner lists claims and volumes (k3s's provisioner role), but
    # a claim by name still needs a pod of this node that uses it.
    assert node.get("/api/v1/persistentvolumeclaims").status_code == 200
    assert node.get("/api/v1/persistentvolumes").status_code == 200
    assert node.get("/apis/storage.k8s.io/v1/storageclasses").status_code == 200
    assert node.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/other").status_code == 403
    # The default ServiceAccount's token is its pods' to ask for.
    assert api.post(
        f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "default"}}
    ).status_code in (201, 409)
    assert node.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default").status_code == 200
    # Pods anywhere are readable (the kubelet lists its own by field selector).
    assert node.get(f"/api/v1/namespaces/{ns}/pods/pb").status_code == 200
    # When its pod moves away, the secret stops being readable.
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/pa?gracePeriodSeconds=0").status_code == 200
    eventually(
        lambda: node.get(f"/api/v1/namespaces/{ns}/secrets/a").status_code == 403,
        what="pod gone from the graph",
    )


def test_node_changes_only_its_own_node_lease_and_pods(
    api: httpx.Client, users: Users, unique: str
) -> None:
    ns = make_namespace(api, f"noderw-{unique}")
    one, two = f"w1-{unique}", f"w2-{unique}"
    node = users.client(f"system:node:{one}", ("system:nodes",))
    other_node = users.client(f"system:node:{two}", ("system:nodes",))
    assert node.post("/api/v1/nodes", json={"metadata": {"name": one}}).status_code == 201
    assert other_node.post("/api/v1/nodes", json={"metadata": {"name": two}}).status_code == 201
    r = node.post("/api/v1/nodes", json={"metadata": {"name": f"x-{unique}"}})
    assert r.status_code == 403
    # Its own node and status: yes. The other's: no.
    patch = {"metadata": {"labels": {"seen": "yes"}}}
    merge = {"Content-Type": "application/merge-patch+json"}
    assert node.patch(f"/api/v1/nodes/{one}", json=patch, headers=merge).status_code == 200
    r = node.patch(f"/api/v1/nodes/{two}", json=patch, headers=merge)
    assert r.status_code == 403
    assert r.json()["message"] == (
        f'nodes "{two}" is forbidden: node "{one}" is not allowed to modify node "{two}"'
    )
    status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert node.patch(f"/api/v1/nodes/{one}/status", json=status, headers=merge).status_code == 200
    assert node.patch(f"/api/v1/nodes/{two}/status", json=status, headers=merge).status_code == 403
    assert node.delete(f"/api/v1/nodes/{two}").status_code == 403
    # Leases: its own in kube-node-lease only.
    lease_url = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    own = {"metadata": {"name": one}, "spec": {"holderIdentity": one, "leaseDurationSeconds": 40}}
    assert node.post(lease_url, json=own).status_code == 201
    other = {"metadata": {"name": two}, "spec": {"holderIdentity": one}}
    assert node.post(lease_url, json=other).status_code == 403
    # Pods: the status of its own pods, nothing of others', never the spec.
    for name, where in (("mine", one), ("theirs", two)):
        body = {
            "metadata": {"name": name},
            "spec": {"nodeName": where, "containers": [{"name": "c", "image": "busybox"}]},
        }
        assert api.post(f"/api/v1/namespaces/{ns}/pods", json=body).status_code == 201
    phase = {"status": {"phase": "Running"}}
    url = f"/api/v1/namespaces/{ns}/pods"
    assert node.patch(f"{url}/mine/status", json=phase, headers=merge).status_code == 200
    r = node.patch(f"{url}/theirs/status", json=phase, headers=merge)
    assert r.status_code == 403
    assert "can only update pods with spec.nodeName set to itself" in r.json()["message"]
    assert (
        node.patch(
            f"{url}/mine", json={"metadata": {"labels": {"a": "b"}}}, headers=merge
        ).status_code
        == 403
    )
    assert node.delete(f"{url}/theirs").status_code == 403
    assert node.get("/api/v1/namespaces/default/secrets").status_code == 403


def test_node_creates_only_mirror_pods_of_its_own(
    api: httpx.Client, users: Users, unique: str
) -> None:
    """A kubelet shows its static pods as mirror pods: bound to it, owned by its Node,
    naming nothing a node could not read otherwise; any other pod it may not create."""
    ns = make_namespace(api, f"mirror-{unique}")
    name = f"m1-{unique}"
    node = users.client(f"system:node:{name}", ("system:nodes",))
    made = node.post("/api/v1/nodes", json={"metadata": {"name": name}})
    assert made.status_code == 201, made.text
    owner = {"apiVersion": "v1", "kind": "Node", "name": name, "controller": True}
    owner["uid"] = made.json()["metadata"]["uid"]

    def mirror(pod: str, **spec: Any) -> dict[str, Any]:
        return {
            "metadata": {
                "name": pod,
                "annotations": {"kubernetes.io/config.mirror": "hash"},
                "ownerReferences": [owner],
            },
            "spec": {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}], **spec},
        }

    url = f"/api/v1/namespaces/{ns}/pods"
    created = node.post(url, json=mirror(f"web-{name}"))
    assert created.status_code == 201, created.text
    assert "serviceAccountName" not in created.json()["spec"]  # no token for a mirror pod
    refused = {
        "plain": (
            {"metadata": {"name": "plain"}, "spec": mirror("x")["spec"]},
            f'node "{name}" can only create mirror pods',
        ),
        "elsewhere": (
            {**mirror("elsewhere"), "spec": {**mirror("e")["spec"], "nodeName": "other"}},
            f'node "{name}" can only create pods with spec.nodeName set to itself',
        ),
        "secret": (
            mirror("secret", volumes=[{"name": "s", "secret": {"secretName": "any"}}]),
            f'node "{name}" can not create pods that reference secrets',
        ),
        "account": (
            mirror("account", serviceAccountName="admin"),
            f'node "{name}" can not create pods that reference a service account',
        ),
    }
    for pod_name, (body, message) in refused.items():
        r = node.post(url, json=body)
        assert r.status_code == 403, (pod_name, r.text)
        assert message in r.json()["message"], (pod_name, r.json()["message"])
    stale = mirror("stale")
    stale["metadata"]["ownerReferences"] = [{**owner, "uid": "not-the-node"}]
    r = node.post(url, json=stale)
    assert r.status_code == 403 and "UID mismatch" in r.json()["message"]
    assert api.get(f"{url}/plain").status_code == 404  # nothing refused was stored
    # And it deletes its own mirror pod (a file removed from its manifest directory).
    assert node.delete(f"{url}/web-{name}").status_code == 200


def test_identities_command_makes_a_node_kubeconfig(apiserver: Any, tmp_path: Any) -> None:
    out = tmp_path / "n.kubeconfig"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "apiserver.identities",
            "--state-dir",
            str(apiserver.state_dir),
            "node",
            "worker-9",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    config = yaml.safe_load(out.read_text())
    assert config["users"][0]["name"] == "system:node:worker-9"
    done = subprocess.run(
        [apiserver.kubectl_binary, "--kubeconfig", str(out), "auth", "whoami", "-o", "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    info = yaml.safe_load(done.stdout)["status"]["userInfo"]
    assert info["username"] == "system:node:worker-9"
    assert "system:nodes" in info["groups"]
