"""PersistentVolumes, claims and StorageClasses against a real apiserver (real etcd), the
real PV binder (controller-manager) and the real scheduler; nodes are Node objects only.
The local-path provisioner runs on nodes: tests/integration/kubelet/test_storage_on_node.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import FAST_ELECTION
from tests.polling import eventually

MANUAL = "manual"


@pytest.fixture
def cluster(start_apiserver: Any, start_component: Any) -> Iterator[tuple[Any, httpx.Client]]:
    server = start_apiserver()
    start_component(
        "controllers",
        server.kubeconfig,
        *FAST_ELECTION,
        "--controllers",
        "persistentvolume-binder,pvc-protection",
    )
    start_component("scheduler", server.kubeconfig, *FAST_ELECTION)
    with server.client() as api:
        yield server, api


def storage_class(
    api: httpx.Client, name: str, provisioner: str, mode: str = "Immediate", default: bool = False
) -> None:
    body: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
    }
    if default:
        body["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    r = api.post("/apis/storage.k8s.io/v1/storageclasses", json=body)
    assert r.status_code == 201, r.text


def pv(
    api: httpx.Client,
    name: str,
    size: str,
    *,
    sc: str = MANUAL,
    policy: str = "Retain",
    node: str = "",
    claim: str = "",
) -> None:
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": sc,
        "persistentVolumeReclaimPolicy": policy,
        "hostPath": {"path": f"/tmp/skiff-test-{name}"},
    }
    if node:
        spec.pop("hostPath")
        spec["local"] = {"path": f"/tmp/skiff-test-{name}"}
        spec["nodeAffinity"] = {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                        ]
                    }
                ]
            }
        }
    if claim:
        spec["claimRef"] = {"namespace": "default", "name": claim}
    r = api.post("/api/v1/persistentvolumes", json={"metadata": {"name": name}, "spec": spec})
    assert r.status_code == 201, r.text


def pvc(api: httpx.Client, name: str, size: str = "1Gi", sc: str | None = MANUAL) -> dict:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if sc is not None:
        spec["storageClassName"] = sc
    r = api.post(
        "/api/v1/namespaces/default/persistentvolumeclaims",
        json={"metadata": {"name": name}, "spec": spec},
    )
    assert r.status_code == 201, r.text
    return r.json()


def get_pv(api: httpx.Client, name: str) -> dict:
    return api.get(f"/api/v1/persistentvolumes/{name}").json()


def get_pvc(api: httpx.Client, name: str) -> dict:
    return api.get(f"/api/v1/namespaces/default/persistentvolumeclaims/{name}").json()


def events_of(api: httpx.Client, name: str) -> list[tuple[str, str, str]]:
    items = api.get("/api/v1/namespaces/default/events").json()["items"]
    return [
        (e["type"], e["reason"], e["message"])
        for e in items
        if e["involvedObject"].get("name") == name
    ]


def test_a_claim_binds_the_smallest_volume_that_fits_and_releases_it(
    kubectl_binary: str, cluster: Any
) -> None:
    """Run with each kubectl the tests know (the columns are the printer's)."""
    server, api = cluster
    storage_class(api, MANUAL, "kubernetes.io/no-provisioner")
    pv(api, "big", "10Gi")
    pv(api, "fits", "2Gi")
    pv(api, "small", "500Mi")
    pvc(api, "data", "1Gi")
    claim = eventually(
        lambda: (c := get_pvc(api, "data"))["status"].get("phase") == "Bound" and c,
        what="claim Bound",
    )
    assert claim["spec"]["volumeName"] == "fits"
    assert claim["status"]["capacity"] == {"storage": "2Gi"}
    assert claim["status"]["accessModes"] == ["ReadWriteOnce"]
    volume = eventually(lambda: (v := get_pv(api, "fits"))["status"]["phase"] == "Bound" and v)
    assert volume["spec"]["claimRef"]["name"] == "data"
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert eventually(lambda: get_pv(api, "big")["status"]["phase"] == "Available")

    out = server.kubectl("get", "pv,pvc")
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "CAPACITY",
        "ACCESS",
        "MODES",
        "RECLAIM",
        "POLICY",
        "STATUS",
        "CLAIM",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "REASON",
        "AGE",
    ]
    row = next(ln.split() for ln in lines if ln.startswith("persistentvolume/fits"))
    assert row[1:7] == ["2Gi", "RWO", "Retain", "Bound", "default/data", MANUAL]
    row = next(ln.split() for ln in lines if ln.startswith("persistentvolumeclaim/data"))
    assert row[1:6] == ["Bound", "fits", "2Gi", "RWO", MANUAL]

    described = server.kubectl("describe", "pv", "fits")
    assert "Claim:           default/data" in described
    assert "Reclaim Policy:  Retain" in described
    assert "Status:          Bound" in described
    wide = server.kubectl("get", "pv", "fits", "-o", "wide").splitlines()
    assert wide[0].split()[-1] == "VOLUMEMODE" and wide[1].split()[-1] == "Filesystem"

    # Retain: the claim goes, the volume stays with its claimRef, Released.
    assert api.delete("/api/v1/namespaces/default/persistentvolumeclaims/data").status_code == 200
    eventually(lambda: get_pv(api, "fits")["status"]["phase"] == "Released", what="Released")
    assert get_pv(api, "fits")["spec"]["claimRef"]["name"] == "data"
    # A new claim of the same name does not get the released volume back.
    pvc(api, "data", "1Gi")
    claim = eventually(
        lambda: (c := get_pvc(api, "data"))["status"].get("phase") == "Bound" and c,
        what="new claim Bound",
    )
    assert claim["spec"]["volumeName"] == "big"


def test_delete_policy_without_a_deleter_fails_the_volume(cluster: Any) -> None:
    _, api = cluster
    storage_class(api, MANUAL, "kubernetes.io/no-provisioner")
    pv(api, "pv-del", "1Gi", policy="Delete")
    pvc(api, "gone")
    eventually(lambda: get_pvc(api, "gone")["status"].get("phase") == "Bound")
    api.delete("/api/v1/namespaces/default/persistentvolumeclaims/gone")
    volume = eventually(lambda: (v := get_pv(api, "pv-del"))["status"]["phase"] == "Failed" and v)
    message = (
        'error getting deleter volume plugin for volume "pv-del": '
        "no deletable volume plugin matched"
    )
    assert volume["status"]["message"] == message
    assert eventually(
        lambda: ("Warning", "VolumeFailedDelete", message) in events_of(api, "pv-del")
    )


def test_pending_claims_say_why(cluster: Any) -> None:
    server, api = cluster
    storage_class(api, "later", "kubernetes.io/no-provisioner", "WaitForFirstConsumer")
    storage_class(api, "external", "example.com/disks")
    pvc(api, "no-class", sc="")
    pvc(api, "waits", sc="later")
    pvc(api, "missing-class", sc="nosuch")
    pvc(api, "external", sc="external")
    eventually(
        lambda: (
            (
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            )
            in events_of(api, "no-class")
        )
    )
    eventually(
        lambda: (
            (
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )
            in events_of(api, "waits")
        )
    )
    eventually(
        lambda: (
            ("Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "nosuch" not found')
            in events_of(api, "missing-class")
        )
    )
    eventually(
        lambda: (
            get_pvc(api, "external")["metadata"]
            .get("annotations", {})
            .get("volume.kubernetes.io/storage-provisioner")
            == "example.com/disks"
        )
    )
    for name in ("no-class", "waits", "missing-class", "external"):
        assert get_pvc(api, name)["status"]["phase"] == "Pending"
    described = server.kubectl("describe", "pvc", "waits", "-n", "default")
    assert "StorageClass:  later" in described
    assert "Status:        Pending" in described
    assert "waiting for first consumer to be created before binding" in described
    explained = server.kubectl("explain", "pv.spec.persistentVolumeReclaimPolicy")
    assert "Retain" in explained


def test_default_storage_class_is_given_to_claims_that_name_none(
    kubectl_binary: str, cluster: Any
) -> None:
    """Run with each kubectl the tests know (the columns are the printer's)."""
    server, api = cluster
    storage_class(api, "fast", "example.com/disks", default=True)
    storage_class(api, "slow", "example.com/disks")
    assert pvc(api, "unnamed", sc=None)["spec"]["storageClassName"] == "fast"
    assert pvc(api, "explicit-none", sc="")["spec"]["storageClassName"] == ""
    assert pvc(api, "named", sc="slow")["spec"]["storageClassName"] == "slow"
    out = server.kubectl("get", "sc")
    assert out.splitlines()[0].split() == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert any(
        ln.split()[:6] == ["fast", "(default)", "example.com/disks", "Delete", "Immediate", "false"]
        for ln in out.splitlines()
    )


def test_a_volume_pre_bound_to_a_claim_goes_to_that_claim(cluster: Any) -> None:
    _, api = cluster
    storage_class(api, MANUAL, "kubernetes.io/no-provisioner")
    pv(api, "reserved", "5Gi", claim="mine")
    pv(api, "open", "1Gi")
    pvc(api, "other")
    pvc(api, "mine")
    eventually(lambda: get_pvc(api, "mine")["spec"].get("volumeName") == "reserved")
    eventually(lambda: get_pvc(api, "other")["spec"].get("volumeName") == "open")


def add_node(api: httpx.Client, name: str) -> None:
    made = api.post(
        "/api/v1/nodes",
        json={"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}},
    )
    assert made.status_code == 201, made.text
    node = made.json()
    node["status"] = {
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert api.put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200


def add_pod(api: httpx.Client, name: str, claim: str) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }
    r = api.post("/api/v1/namespaces/default/pods", json=body)
    assert r.status_code == 201, r.text


def pod_node(api: httpx.Client, name: str) -> str:
    return api.get(f"/api/v1/namespaces/default/pods/{name}").json()["spec"].get("nodeName", "")


def test_scheduler_places_pods_where_their_volumes_are(cluster: Any) -> None:
    _, api = cluster
    storage_class(api, "local", "kubernetes.io/no-provisioner", "WaitForFirstConsumer")
    for n in ("n1", "n2", "n3"):
        add_node(api, n)
    pv(api, "disk-on-n2", "1Gi", sc="local", node="n2")
    pvc(api, "local-claim", sc="local")
    # WaitForFirstConsumer: nothing binds before a pod uses the claim.
    eventually(
        lambda: (
            (
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )
            in events_of(api, "local-claim")
        )
    )
    assert not get_pvc(api, "local-claim")["spec"].get("volumeName")
    add_pod(api, "user", "local-claim")
    assert eventually(lambda: pod_node(api, "user"), what="pod bound") == "n2"
    claim = get_pvc(api, "local-claim")
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "n2"
    assert claim["spec"]["volumeName"] == "disk-on-n2"
    assert claim["status"]["phase"] == "Bound"

    # A second pod of the same (bound) claim follows the volume's node affinity.
    add_pod(api, "second", "local-claim")
    assert eventually(lambda: pod_node(api, "second")) == "n2"

    # A claim that does not exist, and a claim that no node can serve.
    add_pod(api, "orphan", "nosuch")
    pvc(api, "nowhere", sc="local")
    add_pod(api, "stuck", "nowhere")

    def scheduling_message(name: str) -> str:
        items = api.get("/api/v1/namespaces/default/events").json()["items"]
        msgs = [
            e["message"]
            for e in items
            if e["involvedObject"]["name"] == name and e["reason"] == "FailedScheduling"
        ]
        return msgs[-1] if msgs else ""

    assert eventually(lambda: scheduling_message("orphan")) == (
        '0/3 nodes are available: persistentvolumeclaim "nosuch" not found.'
    )
    assert eventually(lambda: scheduling_message("stuck")) == (
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."
    )


def test_a_claim_in_use_is_not_removed_under_its_pod(cluster: Any) -> None:
    server, api = cluster
    storage_class(api, MANUAL, "kubernetes.io/no-provisioner")
    add_node(api, "n1")
    pv(api, "disk", "1Gi")
    claim = pvc(api, "busy")
    assert claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    eventually(lambda: get_pvc(api, "busy")["status"].get("phase") == "Bound")
    add_pod(api, "user", "busy")
    eventually(lambda: pod_node(api, "user") == "n1", what="pod bound")
    assert api.delete("/api/v1/namespaces/default/persistentvolumeclaims/busy").status_code == 200
    time.sleep(1)  # give the protection controller the chance to (wrongly) let it go
    claim = get_pvc(api, "busy")
    assert claim["metadata"].get("deletionTimestamp")
    row = next(
        ln.split()
        for ln in server.kubectl("get", "pvc", "-n", "default").splitlines()
        if ln.startswith("busy")
    )
    assert row[1] == "Terminating"
    # The pod goes (no kubelet here: at once), then the claim, then the volume is Released.
    r = api.delete("/api/v1/namespaces/default/pods/user", params={"gracePeriodSeconds": 0})
    assert r.status_code == 200
    eventually(
        lambda: (
            api.get("/api/v1/namespaces/default/persistentvolumeclaims/busy").status_code == 404
        ),
        what="claim removed",
    )
    eventually(lambda: get_pv(api, "disk")["status"]["phase"] == "Released")
    # A volume keeps its finalizer while Bound; Released, it can go.
    assert get_pv(api, "disk")["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert api.delete("/api/v1/persistentvolumes/disk").status_code == 200
    eventually(lambda: api.get("/api/v1/persistentvolumes/disk").status_code == 404)
