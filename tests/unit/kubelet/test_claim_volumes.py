"""persistentVolumeClaim volumes in the kubelet, and the local-path provisioner's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubelet.localpath import new_volume, to_delete, volume_dir, wants_volume
from kubelet.volumes import VolumeError, VolumeManager


def claim(phase: str = "Bound", volume: str = "pv1", **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "data", "namespace": "ns", "uid": "u1", "annotations": annotations},
        "spec": {
            "storageClassName": "local-path",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": volume,
        },
        "status": {"phase": phase},
    }


def pod(read_only: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid"},
        "spec": {
            "volumes": [
                {
                    "name": "data",
                    "persistentVolumeClaim": {"claimName": "data", "readOnly": read_only},
                }
            ],
            "containers": [{"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
        },
    }


def manager(tmp_path: Path, claims: dict, volumes: dict) -> VolumeManager:
    return VolumeManager(
        tmp_path / "kubelet",
        get_configmap=lambda ns, n: None,
        get_secret=lambda ns, n: None,
        get_claim=lambda ns, n: claims.get(f"{ns}/{n}"),
        get_volume=volumes.get,
    )


def test_a_bound_claim_mounts_its_volume_directory_in_place(tmp_path: Path) -> None:
    where = tmp_path / "storage" / "pvc-u1_ns_data"
    pv = {
        "metadata": {"name": "pv1"},
        "spec": {"hostPath": {"path": str(where), "type": "DirectoryOrCreate"}},
    }
    vm = manager(tmp_path, {"ns/data": claim()}, {"pv1": pv})
    paths = vm.mount_all(pod())
    assert paths == {"data": str(where)} and where.is_dir()
    assert vm.container_mounts(pod(read_only=True), pod()["spec"]["containers"][0], paths) == [
        ("/d", str(where), True)
    ]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (
            {},
            "error processing PVC ns/data: failed to fetch PVC from API server: "
            'persistentvolumeclaims "data" not found',
        ),
        (
            {"ns/data": claim(phase="Pending", volume="")},
            "error processing PVC ns/data: PVC is not bound",
        ),
    ],
)
def test_a_claim_that_cannot_be_used_yet_is_a_failed_mount(
    tmp_path: Path, claims: dict, message: str
) -> None:
    vm = manager(tmp_path, claims, {})
    with pytest.raises(VolumeError) as e:
        vm.mount_all(pod())
    assert e.value.failures == [
        (
            "data",
            "Unable to attach or mount volumes: unmounted volumes=[data], unattached "
            f"volumes=[], failed to process volumes=[data]: {message}",
        )
    ]


SC = {
    "metadata": {"name": "local-path"},
    "provisioner": "rancher.io/local-path",
    "reclaimPolicy": "Delete",
}
HANDED = {
    "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path",
    "volume.kubernetes.io/selected-node": "n1",
}


@pytest.mark.parametrize(
    ("the_claim", "node", "want"),
    [
        (claim(phase="Pending", volume="", **HANDED), "n1", True),
        (claim(phase="Pending", volume="", **HANDED), "n2", False),  # another node's
        (
            claim(phase="Pending", volume="", **{"volume.kubernetes.io/selected-node": "n1"}),
            "n1",
            False,
        ),  # not handed to the provisioner yet
        (claim(volume="pv1", **HANDED), "n1", False),  # already bound
    ],
)
def test_which_claims_this_node_provisions(the_claim: dict, node: str, want: bool) -> None:
    assert wants_volume(the_claim, SC, node) is want


def test_the_volume_made_for_a_claim_and_when_its_directory_goes(tmp_path: Path) -> None:
    c = claim(phase="Pending", volume="", **HANDED)
    path = volume_dir(tmp_path, c)
    assert path == tmp_path / "pvc-u1_ns_data"
    pv = new_volume(c, SC, path, "n1")
    assert pv["metadata"]["name"] == "pvc-u1"
    assert pv["spec"]["claimRef"]["uid"] == "u1"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["capacity"] == {"storage": "1Gi"}
    assert to_delete(pv, "n1", tmp_path) is None  # not Released yet
    pv["status"] = {"phase": "Released"}
    assert to_delete(pv, "n1", tmp_path) == path
    assert to_delete(pv, "n2", tmp_path) is None  # another node's directory
    pv["spec"]["hostPath"]["path"] = "/etc"
    assert to_delete(pv, "n1", tmp_path) is None  # never outside the provisioner's base
    pv["spec"]["hostPath"]["path"] = str(path)
    pv["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    assert to_delete(pv, "n1", tmp_path) is None
