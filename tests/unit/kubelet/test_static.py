"""Static pods read from a manifest directory, named and hashed as Kubernetes does."""

from __future__ import annotations

from pathlib import Path

from kubelet.static import HASH, MIRROR, SOURCE, mirror_of, read_manifests

MANIFEST = """apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  containers: [{name: etcd, image: busybox}]
"""


def test_a_static_pod_is_named_after_its_node_and_hashed(tmp_path: Path) -> None:
    (tmp_path / "etcd.yaml").write_text(MANIFEST)
    (tmp_path / "notes.txt").write_text("not a manifest")
    (pod,) = read_manifests(tmp_path, "node-1").values()
    meta = pod["metadata"]
    assert meta["name"] == "etcd-node-1" and meta["namespace"] == "kube-system"
    assert meta["annotations"][SOURCE] == "file" and meta["annotations"][HASH] == meta["uid"]
    assert pod["spec"]["nodeName"] == "node-1"
    assert pod["spec"]["restartPolicy"] == "Always"  # defaulted as the API would
    # The same manifest on another node, or an edited one, is another pod.
    (other,) = read_manifests(tmp_path, "node-2").values()
    assert other["metadata"]["uid"] != meta["uid"]
    (tmp_path / "etcd.yaml").write_text(MANIFEST.replace("busybox", "busybox:1.36"))
    (edited,) = read_manifests(tmp_path, "node-1").values()
    assert edited["metadata"]["uid"] != meta["uid"]


def test_the_mirror_pod_is_owned_by_the_node(tmp_path: Path) -> None:
    (tmp_path / "etcd.yaml").write_text(MANIFEST)
    (pod,) = read_manifests(tmp_path, "node-1").values()
    node = {"metadata": {"name": "node-1", "uid": "n1"}}
    mirror = mirror_of(pod, node)
    assert mirror["metadata"]["annotations"][MIRROR] == pod["metadata"]["uid"]
    assert "uid" not in mirror["metadata"] and "status" not in mirror
    assert mirror["metadata"]["ownerReferences"][0]["uid"] == "n1"
