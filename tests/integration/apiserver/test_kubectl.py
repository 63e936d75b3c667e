"""The real kubectl against skiff, with the admin kubeconfig skiff wrote."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
"""

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  containers:
  - name: hello
    image: busybox:1.36
    command: ["sleep", "3600"]
"""


def test_get_namespaces(apiserver: Any) -> None:
    out = apiserver.kubectl("get", "ns")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATUS", "AGE"]
    names = {line.split()[0] for line in lines[1:]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    assert "Active" in out


def test_create_get_yaml_delete(apiserver: Any, namespace: str) -> None:
    out = apiserver.kubectl("create", "-n", namespace, "-f", "-", input=POD)
    assert "pod/hello created" in out
    pod = yaml.safe_load(apiserver.kubectl("get", "pods", "-n", namespace, "-o", "yaml"))
    assert pod["kind"] == "List"
    assert pod["items"][0]["metadata"]["name"] == "hello"
    assert pod["items"][0]["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    table = apiserver.kubectl("get", "pods", "-n", namespace)
    assert table.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "Pending" in table
    assert 'pod "hello" deleted' in apiserver.kubectl(
        "delete", "pod", "hello", "-n", namespace, "--wait=false"
    )
    missing = apiserver.kubectl("get", "pod", "hello", "-n", namespace, check=False)
    assert 'pods "hello" not found' in missing


def test_apply_twice_and_validation(apiserver: Any, namespace: str) -> None:
    assert "deployment.apps/web created" in apiserver.kubectl(
        "apply", "-n", namespace, "-f", "-", input=DEPLOYMENT
    )
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    assert "deployment.apps/web configured" in apiserver.kubectl(
        "apply", "-n", namespace, "-f", "-", input=changed
    )
    replicas = apiserver.kubectl(
        "get", "deploy", "web", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas == "3"
    typo = DEPLOYMENT.replace("image: nginx:1.25", "imagee: nginx:1.25")
    refused = apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=typo, check=False)
    assert 'unknown field "spec.template.spec.containers[0].imagee"' in refused


def test_get_deploy_watch_sees_change(apiserver: Any, namespace: str) -> None:
    apiserver.kubectl("create", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    watch = subprocess.Popen(
        [apiserver.kubectl_binary, "--kubeconfig", str(apiserver.kubeconfig),
         "get", "deploy", "-n", namespace,
         "-w", "--request-timeout=20s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watch.stdout is not None
        header = watch.stdout.readline()
        assert header.split()[:2] == ["NAME", "READY"]
        # kubectl watches from its list's resourceVersion: nothing after it is missed.
        assert watch.stdout.readline().split()[0] == "web"
        apiserver.kubectl("scale", "deploy", "web", "-n", namespace, "--replicas=5")
        apiserver.kubectl("label", "deploy", "web", "-n", namespace, "changed=yes")
        line = watch.stdout.readline()
        assert line.split()[0] == "web", line
    finally:
        watch.kill()
        watch.wait()
    spec = apiserver.kubectl(
        "get", "deploy", "web", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    )
    assert spec == "5"


def test_api_resources(apiserver: Any) -> None:
    out = apiserver.kubectl("api-resources")
    rows: dict[str, list[str]] = {}
    for line in out.splitlines()[1:]:  # a name in several groups: the core one is listed first
        rows.setdefault(line.split()[0], line.split())
    assert rows["pods"][1:] == ["po", "v1", "true", "Pod"]
    assert "pods metrics.k8s.io/v1beta1 true PodMetrics" in [
        " ".join(r.split()) for r in out.splitlines()
    ]
    assert rows["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert rows["namespaces"][1:] == ["ns", "v1", "false", "Namespace"]
    assert "leases" in rows and "endpointslices" in rows


def test_errors_are_one_readable_line(apiserver: Any, namespace: str) -> None:
    out = apiserver.kubectl("get", "pod", "nope", "-n", namespace, check=False)
    assert out.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_server_version(apiserver: Any) -> None:
    out = apiserver.kubectl("version", "-o", "yaml")
    assert yaml.safe_load(out)["serverVersion"]["minor"] == "32"


def test_kubectl_debug_says_ephemeral_containers_are_off(
    apiserver: Any, namespace: str, kubectl_binary: str
) -> None:
    """skiff serves no `pods/ephemeralcontainers` (docs/kubectl.md): kubectl debug must
    say so as against a cluster with the feature off. It reads the 404's empty
    `details` to tell that from a missing pod; without them it crashed with a Go panic."""
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=POD)
    out = apiserver.kubectl(
        "debug", "hello", "-n", namespace, "--image=busybox", "--", "true", check=False
    )
    assert "ephemeral containers are disabled for this cluster" in out, out
    assert "panic" not in out and "goroutine" not in out, out
    # The pod is as it was.
    pod = yaml.safe_load(apiserver.kubectl("get", "pod", "hello", "-n", namespace, "-o", "yaml"))
    assert "ephemeralContainers" not in pod["spec"]


EMBEDDING_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: embeds
spec:
  containers:
  - name: main
    image: busybox
    env:
    - name: FROM_SECRET
      valueFrom: {secretKeyRef: {name: creds, key: token}}
    envFrom:
    - configMapRef: {name: settings}
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
    volumeMounts:
    - {name: content, mountPath: /www}
  volumes:
  - name: content
    configMap: {name: web-content}
"""


def test_kubectl_debug_copies_and_node_pods_keep_their_embedded_fields(
    apiserver: Any, namespace: str, kubectl_binary: str
) -> None:
    """kubectl debug writes its pods as protobuf, where a volume's source, a probe's
    handler and a reference's name sit in a message of their own; in JSON they are
    the parent's fields (Go's embedded structs). Read as fields, the copy's volume
    lost its ConfigMap and the node pod its host path."""
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=EMBEDDING_POD)
    out = apiserver.kubectl(
        "debug", "embeds", "-n", namespace, "--copy-to=embeds-copy", "--keep-readiness",
        "--image=busybox", "--container=dbg", "--attach=false", "--", "true",
    )  # fmt: skip
    assert "unknown field" not in out
    original, copy = (
        yaml.safe_load(apiserver.kubectl("get", "pod", name, "-n", namespace, "-o", "yaml"))
        for name in ("embeds", "embeds-copy")
    )
    main = copy["spec"]["containers"][0]
    assert copy["spec"]["volumes"][0]["configMap"]["name"] == "web-content"
    assert main["env"] == original["spec"]["containers"][0]["env"]
    assert main["envFrom"] == [{"configMapRef": {"name": "settings"}}]
    assert main["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert [c["name"] for c in copy["spec"]["containers"]] == ["main", "dbg"]

    apiserver.kubectl(
        "apply", "-f", "-", input="apiVersion: v1\nkind: Node\nmetadata: {name: dbg-node}\n"
    )
    try:
        out = apiserver.kubectl(
            "debug", "node/dbg-node", "-n", namespace, "--image=busybox", "--attach=false",
            "--", "true",
        )  # fmt: skip
        pods = yaml.safe_load(apiserver.kubectl("get", "pods", "-n", namespace, "-o", "yaml"))
        (pod,) = [p for p in pods["items"] if p["metadata"]["name"].startswith("node-debugger-")]
        assert pod["spec"]["nodeName"] == "dbg-node"
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["host-root"]["hostPath"]["path"] == "/", volumes
    finally:
        apiserver.kubectl("delete", "node", "dbg-node", "--wait=false", check=False)


def test_kubectl_drain_evicts_the_nodes_pods(
    apiserver: Any, namespace: str, kubectl_binary: str
) -> None:
    """`kubectl drain` cordons the node and posts pods/x/eviction for each of its pods
    (no kubelet runs here: a grace period of 0 deletes them at once)."""
    node = "apiVersion: v1\nkind: Node\nmetadata: {name: drain-me}\n"
    apiserver.kubectl("apply", "-f", "-", input=node)
    try:
        for name in ("a", "b"):
            pod = POD.replace("name: hello", f"name: {name}").replace(
                "spec:\n", "spec:\n  nodeName: drain-me\n", 1
            )
            apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=pod)
        apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=POD)  # on no node
        out = apiserver.kubectl(
            "drain", "drain-me", "--force", "--grace-period=0", "--timeout=60s", check=False
        )
        assert "pod/a evicted" in out and "pod/b evicted" in out, out
        assert "node/drain-me drained" in out, out
        left = apiserver.kubectl("get", "pods", "-n", namespace, "-o", "name")
        assert left.split() == ["pod/hello"]
        assert "SchedulingDisabled" in apiserver.kubectl("get", "node", "drain-me")
    finally:
        apiserver.kubectl("delete", "node", "drain-me", "--wait=false", check=False)


def test_an_eviction_is_checked_and_answered_as_kubernetes_does(api: Any, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    r = api.post(pods, json=yaml.safe_load(POD))
    assert r.status_code == 201, r.text

    def evict(name: str, body: dict[str, Any]) -> Any:
        return api.post(f"{pods}/{name}/eviction", json=body)

    wrong = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}
    r = evict("hello", wrong)
    assert r.status_code == 400
    assert r.json()["message"] == "name in URL does not match name in Eviction object"
    assert api.get(f"{pods}/hello").status_code == 200  # untouched
    r = evict("absent", {**wrong, "metadata": {"name": "absent"}})
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"
    r = evict(
        "hello", {**wrong, "metadata": {"name": "hello"}, "deleteOptions": {"dryRun": ["All"]}}
    )
    assert r.status_code == 201
    assert api.get(f"{pods}/hello").status_code == 200  # a dry run evicts nothing
    r = evict("hello", {**wrong, "metadata": {"name": "hello"}})
    assert r.status_code == 201
    assert r.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
    }  # fmt: skip
    assert api.get(f"{pods}/hello").status_code == 404  # unbound: gone at once
