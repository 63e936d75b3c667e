"""Storage on a real node: a claim in a manifest gets the default `local-path` class, the
scheduler picks the node, that node's provisioner makes the directory and the volume,
the kubelet mounts it, and the data outlives the pods; the claim's deletion removes the
data under reclaim policy Delete and keeps it (the volume Released) under Retain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .conftest import NODE, Node, busybox, create, events, make_pod, wait_for

CLAIM_AND_POD = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {claim}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 128Mi
{class_line}
---
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "{script}"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: {claim}
"""

APPEND = "echo run >> /data/runs; cat /data/runs; sleep 3600"


def apply(node: Node, ns: str, manifest: str) -> str:
    return node.server.kubectl("apply", "-n", ns, "-f", "-", input=manifest)


def get(node: Node, ns: str, what: str) -> dict[str, Any]:
    return dict(yaml.safe_load(node.kubectl("get", "-n", ns, what, "-o", "yaml")))


def runs_logged(node: Node, ns: str, pod: str) -> int:
    out = node.kubectl("logs", "-n", ns, pod, check=False)
    return out.count("run") if "run" in out else 0


def claim_and_pod(node: Node, ns: str, claim: str, pod: str, class_line: str = "") -> None:
    manifest = CLAIM_AND_POD.format(claim=claim, pod=pod, script=APPEND, class_line=class_line)
    apply(node, ns, manifest)


def delete_pod(node: Node, ns: str, pod: str) -> None:
    node.kubectl("delete", "pod", "-n", ns, pod, "--wait=true", "--timeout=120s")


def test_a_claim_in_a_manifest_just_works_and_keeps_its_data(node: Node, ns: str) -> None:
    out = node.kubectl("get", "sc")
    row = next(ln.split() for ln in out.splitlines() if ln.startswith("local-path"))
    assert row[:6] == [
        "local-path",
        "(default)",
        "rancher.io/local-path",
        "Delete",
        "WaitForFirstConsumer",
        "false",
    ]
    claim_and_pod(node, ns, "notes", "writer")
    wait_for(lambda: runs_logged(node, ns, "writer") == 1, "the first pod's write", timeout=120)
    claim = get(node, ns, "pvc/notes")
    assert claim["spec"]["storageClassName"] == "local-path"
    assert claim["status"]["phase"] == "Bound"
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODE
    volume_name = claim["spec"]["volumeName"]
    assert volume_name == f"pvc-{claim['metadata']['uid']}"
    pv = get(node, ns, f"pv/{volume_name}")
    assert pv["spec"]["claimRef"]["name"] == "notes"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [NODE]
    directory = Path(pv["spec"]["hostPath"]["path"])
    assert directory.parent == node.base / "storage"
    assert (directory / "runs").read_text() == "run\n"  # the container's write, on the node

    pvc_row = next(
        ln.split()
        for ln in node.kubectl("get", "pvc", "-n", ns).splitlines()
        if ln.startswith("notes")
    )
    assert pvc_row[1:6] == ["Bound", volume_name, "128Mi", "RWO", "local-path"]

    # The pod goes, another pod takes the claim: the data is still there.
    delete_pod(node, ns, "writer")
    claim_and_pod(node, ns, "notes", "reader")
    wait_for(lambda: runs_logged(node, ns, "reader") == 2, "the second pod's run", timeout=120)
    assert (directory / "runs").read_text() == "run\nrun\n"

    # Reclaim policy Delete: the claim's deletion removes the directory and the volume.
    delete_pod(node, ns, "reader")
    node.kubectl("delete", "pvc", "-n", ns, "notes", "--wait=true", "--timeout=60s")
    wait_for(lambda: not directory.exists(), "the directory to be removed", timeout=60)
    wait_for(
        lambda: (
            "NotFound" in node.kubectl("get", "pv", volume_name, check=False)
            or not node.kubectl("get", "pv", volume_name, "--ignore-not-found", check=False).strip()
        ),
        "the volume to be deleted",
    )


RETAIN_CLASS = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-retain
provisioner: rancher.io/local-path
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
"""


def test_retain_keeps_the_data_and_releases_the_volume(node: Node, ns: str) -> None:
    apply(node, ns, RETAIN_CLASS)
    claim_and_pod(node, ns, "kept", "keeper", class_line="  storageClassName: local-retain")
    wait_for(lambda: runs_logged(node, ns, "keeper") == 1, "the pod's write", timeout=120)
    volume_name = get(node, ns, "pvc/kept")["spec"]["volumeName"]
    directory = Path(get(node, ns, f"pv/{volume_name}")["spec"]["hostPath"]["path"])
    delete_pod(node, ns, "keeper")
    node.kubectl("delete", "pvc", "-n", ns, "kept", "--wait=true", "--timeout=60s")

    def released() -> list[str]:
        row = next(
            (
                ln.split()
                for ln in node.kubectl("get", "pv").splitlines()
                if ln.startswith(volume_name)
            ),
            [],
        )
        return row if row[4:5] == ["Released"] else []

    row = wait_for(released, "the volume to be Released")
    assert row[1:7] == ["128Mi", "RWO", "Retain", "Released", f"{ns}/kept", "local-retain"]
    assert (directory / "runs").read_text() == "run\n"
    node.kubectl("delete", "pv", volume_name)
    node.kubectl("delete", "sc", "local-retain")


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo run >> /data/runs; cat /data/runs; sleep 3600"]
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 64Mi
"""


def test_a_statefulset_pod_keeps_its_data_across_deletion(node: Node, ns: str) -> None:
    apply(node, ns, STATEFULSET)
    wait_for(lambda: runs_logged(node, ns, "db-0") == 1, "db-0's first run", timeout=120)
    claim = get(node, ns, "pvc/data-db-0")
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "local-path"
    first_uid = get(node, ns, "pod/db-0")["metadata"]["uid"]
    delete_pod(node, ns, "db-0")

    def recreated() -> bool:
        pod = node.pod(ns, "db-0")
        return bool(pod) and pod["metadata"]["uid"] != first_uid

    wait_for(recreated, "db-0 to be recreated", timeout=60)
    wait_for(lambda: runs_logged(node, ns, "db-0") == 2, "db-0's second run", timeout=120)
    assert get(node, ns, "pvc/data-db-0")["spec"]["volumeName"] == claim["spec"]["volumeName"]


def test_a_pod_whose_claim_is_missing_waits_with_failed_mount(node: Node, ns: str) -> None:
    # nodeName set by hand: past the scheduler, which would not place it.
    pod = make_pod(
        "early",
        busybox("main", volumeMounts=[{"name": "data", "mountPath": "/data"}]),
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "later"}}],
    )
    create(node, ns, pod)
    message = (
        "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], "
        f"failed to process volumes=[data]: error processing PVC {ns}/later: failed to fetch "
        'PVC from API server: persistentvolumeclaims "later" not found'
    )
    wait_for(
        lambda: any(
            e["reason"] == "FailedMount" and e["message"] == message
            for e in events(node, ns, "early")
        ),
        "FailedMount",
    )
    assert get(node, ns, "pod/early")["status"]["phase"] == "Pending"
