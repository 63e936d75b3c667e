"""The kubectl commands users type every day, run with the real kubectl against skiff.

Each test asserts both what kubectl prints and what the API then holds.
Commands that need controllers (rollout status, undo) are covered where the
controllers live; here the API alone must be enough. Every test runs with each
kubectl the suite knows (tests/conftest.py: the system's 1.30+ and the current
release in .venv/bin), since users bring either.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.usefixtures("kubectl_binary")

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: demo, keep: "yes"}
data:
  colour: blue
  size: large
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def get_json(server: Any, *args: str) -> dict:
    return json.loads(server.kubectl("get", *args, "-o", "json"))


def test_apply_change_remove_field_and_unchanged(
    apiserver: Any, namespace: str, tmp_path: Path
) -> None:
    manifest = write(tmp_path / "cm.yaml", CONFIGMAP)
    ns = ("-n", namespace)
    assert "configmap/settings created" in apiserver.kubectl("apply", *ns, "-f", str(manifest))
    assert "configmap/settings unchanged" in apiserver.kubectl("apply", *ns, "-f", str(manifest))
    write(manifest, CONFIGMAP.replace("  size: large\n", "").replace("blue", "green"))
    assert "configmap/settings configured" in apiserver.kubectl("apply", *ns, "-f", str(manifest))
    cm = get_json(apiserver, "cm", "settings", *ns)
    assert cm["data"] == {"colour": "green"}  # the removed field is gone


def test_apply_directory_recursive_and_multi_document(
    apiserver: Any, namespace: str, tmp_path: Path
) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    write(tmp_path / "a" / "one.yaml", CONFIGMAP.replace("settings", "one"))
    write(
        nested / "two.yaml",
        CONFIGMAP.replace("settings", "two") + "---\n" + CONFIGMAP.replace("settings", "three"),
    )
    out = apiserver.kubectl("apply", "-n", namespace, "-R", "-f", str(tmp_path / "a"))
    assert {"configmap/one created", "configmap/two created", "configmap/three created"} <= set(
        out.splitlines()
    )


def test_server_side_apply_conflict_then_force(
    apiserver: Any, namespace: str, tmp_path: Path
) -> None:
    manifest = write(tmp_path / "cm.yaml", CONFIGMAP)
    ns = ("-n", namespace)
    assert "serverside-applied" in apiserver.kubectl(
        "apply", "--server-side", *ns, "-f", str(manifest)
    )
    write(manifest, CONFIGMAP.replace("blue", "red"))
    refused = apiserver.kubectl(
        "apply", "--server-side", "--field-manager=intruder", *ns, "-f", str(manifest), check=False
    )
    assert 'Apply failed with 1 conflict: conflict with "kubectl" using v1: .data.colour' in (
        refused
    )
    assert get_json(apiserver, "cm", "settings", *ns)["data"]["colour"] == "blue"
    apiserver.kubectl(
        "apply",
        "--server-side",
        "--field-manager=intruder",
        "--force-conflicts",
        *ns,
        "-f",
        str(manifest),
    )
    cm = get_json(apiserver, "cm", "settings", *ns, "--show-managed-fields")
    assert cm["data"]["colour"] == "red"
    managers = {e["manager"]: e["operation"] for e in cm["metadata"]["managedFields"]}
    assert managers["intruder"] == "Apply"


def test_imperative_create_commands(apiserver: Any, namespace: str, tmp_path: Path) -> None:
    ns = ("-n", namespace)
    assert "deployment.apps/web created" in apiserver.kubectl(
        "create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", *ns
    )
    assert "configmap/lit created" in apiserver.kubectl(
        "create",
        "configmap",
        "lit",
        "--from-literal=a=1",
        f"--from-file={write(tmp_path / 'f.txt', 'hello')}",
        *ns,
    )
    assert "secret/pw created" in apiserver.kubectl(
        "create", "secret", "generic", "pw", "--from-literal=password=s3cret", *ns
    )
    assert "service/web exposed" in apiserver.kubectl(
        "expose", "deployment", "web", "--port=80", "--target-port=8080", *ns
    )
    assert "pod/once created" in apiserver.kubectl(
        "run", "once", "--image=busybox:1.36", "--restart=Never", *ns, "--", "true"
    )

    deploy = get_json(apiserver, "deploy", "web", *ns)
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    cm = get_json(apiserver, "cm", "lit", *ns)
    assert cm["data"] == {"a": "1", "f.txt": "hello"}
    secret = get_json(apiserver, "secret", "pw", *ns)
    assert secret["type"] == "Opaque" and secret["data"]["password"] == "czNjcmV0"
    svc = get_json(apiserver, "svc", "web", *ns)
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["clusterIP"].startswith("10.")
    pod = get_json(apiserver, "pod", "once", *ns)
    assert pod["spec"]["restartPolicy"] == "Never"


def test_get_output_forms(apiserver: Any, namespace: str, tmp_path: Path) -> None:
    ns = ("-n", namespace)
    apiserver.kubectl("apply", *ns, "-f", str(write(tmp_path / "cm.yaml", CONFIGMAP)))
    assert apiserver.kubectl("get", "cm", "settings", *ns, "-o", "name").strip() == (
        "configmap/settings"
    )
    assert (
        apiserver.kubectl("get", "cm", "settings", *ns, "-o", "jsonpath={.data.colour}") == "blue"
    )
    columns = apiserver.kubectl(
        "get", "cm", *ns, "-o", "custom-columns=NAME:.metadata.name,COLOUR:.data.colour"
    )
    assert columns.splitlines() == ["NAME       COLOUR", "settings   blue"]
    labelled = apiserver.kubectl("get", "cm", *ns, "--show-labels", "-l", "app=demo")
    assert labelled.splitlines()[0].split() == ["NAME", "DATA", "AGE", "LABELS"]
    assert "app=demo,keep=yes" in labelled
    as_yaml = yaml.safe_load(apiserver.kubectl("get", "cm", "settings", *ns, "-o", "yaml"))
    assert as_yaml["data"]["size"] == "large"
    everywhere = apiserver.kubectl(
        "get", "cm", "-A", "--field-selector", f"metadata.namespace={namespace}"
    )
    assert everywhere.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert "settings" in everywhere


def test_label_annotate_patch_replace_edit(
    apiserver: Any, namespace: str, tmp_path: Path, kubectl_binary: str
) -> None:
    ns = ("-n", namespace)
    apiserver.kubectl("apply", *ns, "-f", str(write(tmp_path / "cm.yaml", CONFIGMAP)))
    assert "labeled" in apiserver.kubectl("label", "cm", "settings", "tier=gold", *ns)
    assert "annotated" in apiserver.kubectl("annotate", "cm", "settings", "note=hi", *ns)
    apiserver.kubectl("patch", "cm", "settings", *ns, "-p", '{"data":{"smp":"1"}}')
    apiserver.kubectl(
        "patch", "cm", "settings", *ns, "--type=merge", "-p", '{"data":{"merge":"2"}}'
    )
    apiserver.kubectl(
        "patch", "cm", "settings", *ns, "--type=json", "-p", '[{"op":"remove","path":"/data/size"}]'
    )
    cm = get_json(apiserver, "cm", "settings", *ns)
    assert cm["metadata"]["labels"]["tier"] == "gold"
    assert cm["metadata"]["annotations"]["note"] == "hi"
    assert cm["data"] == {"colour": "blue", "smp": "1", "merge": "2"}

    cm["data"]["colour"] = "replaced"
    replacement = write(tmp_path / "r.json", json.dumps(cm))
    assert "configmap/settings replaced" in apiserver.kubectl(
        "replace", *ns, "-f", str(replacement)
    )
    editor = write(
        tmp_path / "editor.sh", "#!/bin/sh\nsed -i 's/colour: replaced/colour: edited/' \"$1\"\n"
    )
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "KUBE_EDITOR": str(editor), "KUBECONFIG": str(apiserver.kubeconfig)}
    result = subprocess.run(
        [kubectl_binary, "edit", "cm", "settings", *ns],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "configmap/settings edited" in result.stdout, result.stderr
    assert get_json(apiserver, "cm", "settings", *ns)["data"]["colour"] == "edited"


def test_scale_wait_delete(apiserver: Any, namespace: str) -> None:
    ns = ("-n", namespace)
    apiserver.kubectl("create", "deployment", "s", "--image=nginx:1.25", *ns)
    assert "deployment.apps/s scaled" in apiserver.kubectl(
        "scale", "deploy", "s", "--replicas=4", *ns
    )
    assert (
        apiserver.kubectl(
            "wait", "deploy/s", *ns, "--for=jsonpath={.spec.replicas}=4", "--timeout=10s"
        ).strip()
        == "deployment.apps/s condition met"
    )
    apiserver.kubectl("create", "configmap", "bye", *ns)
    assert 'configmap "bye" deleted' in apiserver.kubectl("delete", "cm", "bye", *ns)
    assert apiserver.kubectl(
        "wait", "cm/bye", *ns, "--for=delete", "--timeout=5s", check=False
    ).strip() in ("", "configmap/bye condition met")
    apiserver.kubectl("create", "configmap", "l1", *ns)
    apiserver.kubectl("label", "cm", "l1", "drop=me", *ns)
    assert 'configmap "l1" deleted' in apiserver.kubectl("delete", "cm", "-l", "drop=me", *ns)


def test_describe_and_discovery_commands(apiserver: Any, namespace: str) -> None:
    ns = ("-n", namespace)
    apiserver.kubectl("create", "deployment", "d", "--image=nginx:1.25", *ns)
    described = apiserver.kubectl("describe", "deploy", "d", *ns)
    assert "Replicas:" in described and "nginx:1.25" in described
    assert "Status:       Active" in apiserver.kubectl("describe", "ns", namespace)
    versions = apiserver.kubectl("api-versions").split()
    assert {"v1", "apps/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1"} <= set(versions)
    assert "Kubernetes control plane is running at" in apiserver.kubectl("cluster-info")
    explained = apiserver.kubectl("explain", "pod.spec.containers")
    assert "FIELD: containers <[]Container>" in explained
    assert "image\t<string>" in explained
    view = yaml.safe_load(apiserver.kubectl("config", "view", "--minify"))
    assert view["clusters"][0]["cluster"]["server"] == apiserver.url
    assert apiserver.kubectl("version", "-o", "json")


def test_errors_read_like_kubernetes(apiserver: Any, namespace: str, tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: -1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
""",
    )
    out = apiserver.kubectl("apply", "-n", namespace, "-f", str(bad), check=False)
    assert (
        'The Deployment "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0" in out
    )
    assert "Traceback" not in out


def test_apply_prune_removes_what_left_the_manifests(
    apiserver: Any, namespace: str, tmp_path: Path
) -> None:
    ns = ("-n", namespace)
    both = CONFIGMAP.replace("settings", "one") + "---\n" + CONFIGMAP.replace("settings", "two")
    apiserver.kubectl("apply", *ns, "-f", str(write(tmp_path / "all.yaml", both)))
    only_one = write(tmp_path / "all.yaml", CONFIGMAP.replace("settings", "one"))
    out = apiserver.kubectl(
        "apply",
        *ns,
        "--prune",
        "-l",
        "app=demo",
        "--prune-allowlist=core/v1/ConfigMap",
        "-f",
        str(only_one),
    )
    assert "configmap/two pruned" in out
    names = apiserver.kubectl("get", "cm", *ns, "-l", "app=demo", "-o", "name").split()
    assert names == ["configmap/one"]


def test_describe_node_replicaset_service(apiserver: Any, namespace: str, tmp_path: Path) -> None:
    node = f"describe-{namespace}"[:63]
    apiserver.kubectl(
        "apply",
        "-f",
        str(
            write(
                tmp_path / "node.yaml", f"apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n"
            )
        ),
    )
    try:
        described = apiserver.kubectl("describe", "node", node)
        assert f"Name:               {node}" in described
    finally:
        apiserver.kubectl("delete", "node", node)
    ns = ("-n", namespace)
    apiserver.kubectl("create", "deployment", "dd", "--image=nginx:1.25", *ns)
    apiserver.kubectl("expose", "deployment", "dd", "--port=80", *ns)
    assert "Selector:" in apiserver.kubectl("describe", "svc", "dd", *ns)
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "rs1"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    apiserver.kubectl("apply", *ns, "-f", str(write(tmp_path / "rs.json", json.dumps(rs))))
    assert "Replicas:" in apiserver.kubectl("describe", "rs", "rs1", *ns)


def test_rollout_commands_diff_get_all_and_events(control_plane: Any, tmp_path: Path) -> None:
    """With the controller-manager running, as a user would have it."""
    server, _ = control_plane
    ns = ("-n", "default")
    name = f"ro-{uuid.uuid4().hex[:6]}"  # the control plane is shared by the kubectl runs
    deploy = f"deployment/{name}"
    server.kubectl("create", "deployment", name, "--image=nginx:1.25", "--replicas=2", *ns)
    deadline = time.monotonic() + 30
    history = ""
    while "REVISION" not in history and time.monotonic() < deadline:
        history = server.kubectl("rollout", "history", deploy, *ns)
        time.sleep(0.3)  # until the controller has made the first ReplicaSet
    assert "REVISION" in history
    assert f"deployment.apps/{name} restarted" in server.kubectl("rollout", "restart", deploy, *ns)
    assert f"deployment.apps/{name} paused" in server.kubectl("rollout", "pause", deploy, *ns)
    assert f"deployment.apps/{name} resumed" in server.kubectl("rollout", "resume", deploy, *ns)
    everything = server.kubectl("get", "all", *ns)
    assert f"deployment.apps/{name}" in everything
    assert f"replicaset.apps/{name}-" in everything
    assert f"pod/{name}-" in everything and "service/kubernetes" in everything
    events = server.kubectl("events", *ns)
    assert "ScalingReplicaSet" in events
    live = json.loads(server.kubectl("get", "deploy", name, *ns, "-o", "json"))
    live["spec"]["replicas"] = 5
    live.pop("status")
    live["metadata"] = {"name": name, "namespace": "default"}
    changed = write(tmp_path / "ro.json", json.dumps(live))
    diff = server.kubectl("diff", "-f", str(changed), check=False)
    assert "-  replicas: 2" in diff and "+  replicas: 5" in diff
