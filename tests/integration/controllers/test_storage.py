"""PersistentVolumes, claims and StorageClasses against a real apiserver (real etcd), the
real PV binder (controller-manager) and the real scheduler; nodes are Node objects only.
The local-path provisioner runs on nodes: tests/integration/kubelet/test_storage_on_node.py.

The tests share one control plane (starting one costs seconds). Each has a namespace
of its own for claims and pods, and a suffix of its own on the names of what is
cluster-wide (storage classes, volumes, nodes), which it removes afterwards: a volume
binds only within its class, and the scheduler counts every node there is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import FAST_ELECTION, ApiServerProcess, ComponentProcess
from tests.polling import eventually

MANUAL = "manual"


@pytest.fixture(scope="module")
def storage_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    """An apiserver with the PV binder, the claim protection and the scheduler."""
    state = tmp_path_factory.mktemp("storage")
    server = ApiServerProcess(state / "apiserver")
    logs = tmp_path_factory.mktemp("storage-logs")
    controllers = "persistentvolume-binder,pvc-protection"
    components = [
        ComponentProcess(
            "controllers",
            server.kubeconfig,
            logs / "controllers.log",
            *FAST_ELECTION,
            "--controllers",
            controllers,
        ),
        ComponentProcess("scheduler", server.kubeconfig, logs / "scheduler.log", *FAST_ELECTION),
    ]
    try:
        server.start()
        for component in components:
            component.start()
        yield server
    finally:
        for component in components:
            component.stop()
        server.stop()


@dataclass
class Space:
    """One test's part of the shared cluster: its namespace, and its suffix for the
    names of cluster-wide objects (`name("fits")` is the volume `fits-<suffix>`)."""

    server: ApiServerProcess
    api: httpx.Client
    ns: str
    suffix: str
    made: list[str] = field(default_factory=list)  # cluster-wide paths, to remove

    def name(self, base: str) -> str:
        return f"{base}-{self.suffix}"


@pytest.fixture
def cluster(storage_plane: ApiServerProcess) -> Iterator[Space]:
    suffix = uuid.uuid4().hex[:8]
    with storage_plane.client() as api:
        ns = f"storage-{suffix}"
        made = api.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
        assert made.status_code == 201, made.text
        space = Space(storage_plane, api, ns, suffix)
        try:
            yield space
        finally:
            pods = api.get(f"/api/v1/namespaces/{ns}/pods").json().get("items") or []
            for p in pods:
                name = p["metadata"]["name"]
                api.delete(f"/api/v1/namespaces/{ns}/pods/{name}", params={"gracePeriodSeconds": 0})
            for path in reversed(space.made):
                api.delete(path)


def storage_class(
    sp: Space, base: str, provisioner: str, mode: str = "Immediate", default: bool = False
) -> None:
    name = sp.name(base)
    body: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
    }
    if default:
        body["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    r = sp.api.post("/apis/storage.k8s.io/v1/storageclasses", json=body)
    assert r.status_code == 201, r.text
    sp.made.append(f"/apis/storage.k8s.io/v1/storageclasses/{name}")


def pv(
    sp: Space,
    base: str,
    size: str,
    *,
    sc: str = MANUAL,
    policy: str = "Retain",
    node: str = "",
    claim: str = "",
) -> None:
    name = sp.name(base)
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": sp.name(sc),
        "persistentVolumeReclaimPolicy": policy,
        "hostPath": {"path": f"/tmp/skiff-test-{name}"},
    }
    if node:
        node = sp.name(node)
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
        spec["claimRef"] = {"namespace": sp.ns, "name": claim}
    r = sp.api.post("/api/v1/persistentvolumes", json={"metadata": {"name": name}, "spec": spec})
    assert r.status_code == 201, r.text
    sp.made.append(f"/api/v1/persistentvolumes/{name}")


def pvc(sp: Space, name: str, size: str = "1Gi", sc: str | None = MANUAL) -> dict:
    """A claim in the test's namespace; `sc` is the test's class of that name, "" none."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if sc is not None:
        spec["storageClassName"] = sp.name(sc) if sc else ""
    r = sp.api.post(
        f"/api/v1/namespaces/{sp.ns}/persistentvolumeclaims",
        json={"metadata": {"name": name}, "spec": spec},
    )
    assert r.status_code == 201, r.text
    return r.json()


def get_pv(sp: Space, base: str) -> dict:
    return sp.api.get(f"/api/v1/persistentvolumes/{sp.name(base)}").json()


def get_pvc(sp: Space, name: str) -> dict:
    return sp.api.get(f"/api/v1/namespaces/{sp.ns}/persistentvolumeclaims/{name}").json()


def events_of(sp: Space, name: str, ns: str = "") -> list[tuple[str, str, str]]:
    """Events about `name` in the test's namespace (`ns="default"`: a volume's)."""
    items = sp.api.get(f"/api/v1/namespaces/{ns or sp.ns}/events").json()["items"]
    return [
        (e["type"], e["reason"], e["message"])
        for e in items
        if e["involvedObject"].get("name") == name
    ]


def test_a_claim_binds_the_smallest_volume_that_fits_and_releases_it(
    kubectl_binary: str, cluster: Any
) -> None:
    """Run with each kubectl the tests know (the columns are the printer's)."""
    sp = cluster
    fits = sp.name("fits")
    storage_class(sp, MANUAL, "kubernetes.io/no-provisioner")
    pv(sp, "big", "10Gi")
    pv(sp, "fits", "2Gi")
    pv(sp, "small", "500Mi")
    pvc(sp, "data", "1Gi")
    claim = eventually(
        lambda: (c := get_pvc(sp, "data"))["status"].get("phase") == "Bound" and c,
        what="claim Bound",
    )
    assert claim["spec"]["volumeName"] == fits
    assert claim["status"]["capacity"] == {"storage": "2Gi"}
    assert claim["status"]["accessModes"] == ["ReadWriteOnce"]
    volume = eventually(lambda: (v := get_pv(sp, "fits"))["status"]["phase"] == "Bound" and v)
    assert volume["spec"]["claimRef"]["name"] == "data"
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert eventually(lambda: get_pv(sp, "big")["status"]["phase"] == "Available")

    out = sp.server.kubectl("get", "pv,pvc", "-n", sp.ns)
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
    row = next(ln.split() for ln in lines if ln.startswith(f"persistentvolume/{fits} "))
    assert row[1:7] == ["2Gi", "RWO", "Retain", "Bound", f"{sp.ns}/data", sp.name(MANUAL)]
    row = next(ln.split() for ln in lines if ln.startswith("persistentvolumeclaim/data"))
    assert row[1:6] == ["Bound", fits, "2Gi", "RWO", sp.name(MANUAL)]

    described = sp.server.kubectl("describe", "pv", fits)
    assert f"Claim:           {sp.ns}/data" in described
    assert "Reclaim Policy:  Retain" in described
    assert "Status:          Bound" in described
    wide = sp.server.kubectl("get", "pv", fits, "-o", "wide").splitlines()
    assert wide[0].split()[-1] == "VOLUMEMODE" and wide[1].split()[-1] == "Filesystem"

    # Retain: the claim goes, the volume stays with its claimRef, Released.
    assert (
        sp.api.delete(f"/api/v1/namespaces/{sp.ns}/persistentvolumeclaims/data").status_code == 200
    )
    eventually(lambda: get_pv(sp, "fits")["status"]["phase"] == "Released", what="Released")
    assert get_pv(sp, "fits")["spec"]["claimRef"]["name"] == "data"
    # A new claim of the same name does not get the released volume back.
    pvc(sp, "data", "1Gi")
    claim = eventually(
        lambda: (c := get_pvc(sp, "data"))["status"].get("phase") == "Bound" and c,
        what="new claim Bound",
    )
    assert claim["spec"]["volumeName"] == sp.name("big")


def test_delete_policy_without_a_deleter_fails_the_volume(cluster: Any) -> None:
    sp = cluster
    storage_class(sp, MANUAL, "kubernetes.io/no-provisioner")
    pv(sp, "pv-del", "1Gi", policy="Delete")
    pvc(sp, "gone")
    eventually(lambda: get_pvc(sp, "gone")["status"].get("phase") == "Bound")
    sp.api.delete(f"/api/v1/namespaces/{sp.ns}/persistentvolumeclaims/gone")
    volume = eventually(lambda: (v := get_pv(sp, "pv-del"))["status"]["phase"] == "Failed" and v)
    message = (
        f'error getting deleter volume plugin for volume "{sp.name("pv-del")}": '
        "no deletable volume plugin matched"
    )
    assert volume["status"]["message"] == message
    assert eventually(
        lambda: (
            ("Warning", "VolumeFailedDelete", message)
            in events_of(sp, sp.name("pv-del"), ns="default")
        )
    )


def test_pending_claims_say_why(cluster: Any) -> None:
    sp = cluster
    storage_class(sp, "later", "kubernetes.io/no-provisioner", "WaitForFirstConsumer")
    storage_class(sp, "external", "example.com/disks")
    pvc(sp, "no-class", sc="")
    pvc(sp, "waits", sc="later")
    pvc(sp, "missing-class", sc="nosuch")
    pvc(sp, "external", sc="external")
    missing = f'storageclass.storage.k8s.io "{sp.name("nosuch")}" not found'
    eventually(
        lambda: (
            (
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            )
            in events_of(sp, "no-class")
        )
    )
    eventually(
        lambda: (
            (
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )
            in events_of(sp, "waits")
        )
    )
    eventually(lambda: ("Warning", "ProvisioningFailed", missing) in events_of(sp, "missing-class"))
    eventually(
        lambda: (
            get_pvc(sp, "external")["metadata"]
            .get("annotations", {})
            .get("volume.kubernetes.io/storage-provisioner")
            == "example.com/disks"
        )
    )
    for name in ("no-class", "waits", "missing-class", "external"):
        assert get_pvc(sp, name)["status"]["phase"] == "Pending"
    described = sp.server.kubectl("describe", "pvc", "waits", "-n", sp.ns)
    assert f"StorageClass:  {sp.name('later')}" in described
    assert "Status:        Pending" in described
    assert "waiting for first consumer to be created before binding" in described
    explained = sp.server.kubectl("explain", "pv.spec.persistentVolumeReclaimPolicy")
    assert "Retain" in explained


def test_default_storage_class_is_given_to_claims_that_name_none(
    kubectl_binary: str, cluster: Any
) -> None:
    """Run with each kubectl the tests know (the columns are the printer's)."""
    sp = cluster
    fast = sp.name("fast")
    storage_class(sp, "fast", "example.com/disks", default=True)
    storage_class(sp, "slow", "example.com/disks")
    assert pvc(sp, "unnamed", sc=None)["spec"]["storageClassName"] == fast
    assert pvc(sp, "explicit-none", sc="")["spec"]["storageClassName"] == ""
    assert pvc(sp, "named", sc="slow")["spec"]["storageClassName"] == sp.name("slow")
    out = sp.server.kubectl("get", "sc")
    assert out.splitlines()[0].split() == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert any(
        ln.split()[:6] == [fast, "(default)", "example.com/disks", "Delete", "Immediate", "false"]
        for ln in out.splitlines()
    )


def test_a_volume_pre_bound_to_a_claim_goes_to_that_claim(cluster: Any) -> None:
    sp = cluster
    storage_class(sp, MANUAL, "kubernetes.io/no-provisioner")
    pv(sp, "reserved", "5Gi", claim="mine")
    pv(sp, "open", "1Gi")
    pvc(sp, "other")
    pvc(sp, "mine")
    eventually(lambda: get_pvc(sp, "mine")["spec"].get("volumeName") == sp.name("reserved"))
    eventually(lambda: get_pvc(sp, "other")["spec"].get("volumeName") == sp.name("open"))


def add_node(sp: Space, base: str) -> None:
    name = sp.name(base)
    made = sp.api.post(
        "/api/v1/nodes",
        json={"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}},
    )
    assert made.status_code == 201, made.text
    sp.made.append(f"/api/v1/nodes/{name}")
    node = made.json()
    node["status"] = {
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert sp.api.put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200


def add_pod(sp: Space, name: str, claim: str) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }
    r = sp.api.post(f"/api/v1/namespaces/{sp.ns}/pods", json=body)
    assert r.status_code == 201, r.text


def pod_node(sp: Space, name: str) -> str:
    pod = sp.api.get(f"/api/v1/namespaces/{sp.ns}/pods/{name}").json()
    return str(pod["spec"].get("nodeName", ""))


def test_scheduler_places_pods_where_their_volumes_are(cluster: Any) -> None:
    sp = cluster
    n2 = sp.name("n2")
    storage_class(sp, "local", "kubernetes.io/no-provisioner", "WaitForFirstConsumer")
    for n in ("n1", "n2", "n3"):
        add_node(sp, n)
    pv(sp, "disk-on-n2", "1Gi", sc="local", node="n2")
    pvc(sp, "local-claim", sc="local")
    # WaitForFirstConsumer: nothing binds before a pod uses the claim.
    eventually(
        lambda: (
            (
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )
            in events_of(sp, "local-claim")
        )
    )
    assert not get_pvc(sp, "local-claim")["spec"].get("volumeName")
    add_pod(sp, "user", "local-claim")
    assert eventually(lambda: pod_node(sp, "user"), what="pod bound") == n2
    claim = get_pvc(sp, "local-claim")
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == n2
    assert claim["spec"]["volumeName"] == sp.name("disk-on-n2")
    assert claim["status"]["phase"] == "Bound"

    # A second pod of the same (bound) claim follows the volume's node affinity.
    add_pod(sp, "second", "local-claim")
    assert eventually(lambda: pod_node(sp, "second")) == n2

    # A claim that does not exist, and a claim that no node can serve.
    add_pod(sp, "orphan", "nosuch")
    pvc(sp, "nowhere", sc="local")
    add_pod(sp, "stuck", "nowhere")

    def scheduling_message(name: str) -> str:
        items = sp.api.get(f"/api/v1/namespaces/{sp.ns}/events").json()["items"]
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
    sp, api = cluster, cluster.api
    storage_class(sp, MANUAL, "kubernetes.io/no-provisioner")
    add_node(sp, "n1")
    pv(sp, "disk", "1Gi")
    claim = pvc(sp, "busy")
    assert claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    eventually(lambda: get_pvc(sp, "busy")["status"].get("phase") == "Bound")
    add_pod(sp, "user", "busy")
    eventually(lambda: pod_node(sp, "user") == sp.name("n1"), what="pod bound")
    assert api.delete(f"/api/v1/namespaces/{sp.ns}/persistentvolumeclaims/busy").status_code == 200
    time.sleep(1)  # give the protection controller the chance to (wrongly) let it go
    claim = get_pvc(sp, "busy")
    assert claim["metadata"].get("deletionTimestamp")
    row = next(
        ln.split()
        for ln in sp.server.kubectl("get", "pvc", "-n", sp.ns).splitlines()
        if ln.startswith("busy")
    )
    assert row[1] == "Terminating"
    # The pod goes (no kubelet here: at once), then the claim, then the volume is Released.
    r = api.delete(f"/api/v1/namespaces/{sp.ns}/pods/user", params={"gracePeriodSeconds": 0})
    assert r.status_code == 200
    eventually(
        lambda: (
            api.get(f"/api/v1/namespaces/{sp.ns}/persistentvolumeclaims/busy").status_code == 404
        ),
        what="claim removed",
    )
    eventually(lambda: get_pv(sp, "disk")["status"]["phase"] == "Released")
    # A volume keeps its finalizer while Bound; Released, it can go.
    assert get_pv(sp, "disk")["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    disk = f"/api/v1/persistentvolumes/{sp.name('disk')}"
    assert api.delete(disk).status_code == 200
    eventually(lambda: api.get(disk).status_code == 404)
