"""PV binder decisions: which volume a claim gets, when it waits, what a volume's phase is."""

from __future__ import annotations

from typing import Any

import pytest

from api import storage as st
from controllers.persistentvolume import ClaimPlan, VolumePlan, decide_claim, decide_volume


def claim(
    name: str = "data",
    size: str = "1Gi",
    sc: str | None = "manual",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": size}},
        "volumeMode": "Filesystem",
    }
    if sc is not None:
        spec["storageClassName"] = sc
    spec.update(extra.pop("spec", {}))
    phase = extra.pop("phase", "Pending")
    meta = {"name": name, "namespace": "default", "uid": "u-" + name, **extra}
    return {
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase},
    }


def volume(
    name: str,
    size: str = "1Gi",
    sc: str = "manual",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    ref: dict[str, Any] | None = None,
    phase: str = "Available",
    policy: str = "Retain",
    node: str = "",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": list(modes),
        "storageClassName": sc,
        "volumeMode": "Filesystem",
        "persistentVolumeReclaimPolicy": policy,
        "hostPath": {"path": "/tmp/" + name},
    }
    if ref is not None:
        spec["claimRef"] = ref
    if node:
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
    return {
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


MANUAL = {
    "metadata": {"name": "manual"},
    "provisioner": st.NO_PROVISIONER,
    "volumeBindingMode": "Immediate",
}
LOCAL = {
    "metadata": {"name": "local-path"},
    "provisioner": "rancher.io/local-path",
    "volumeBindingMode": "WaitForFirstConsumer",
}
REF = {"namespace": "default", "name": "data", "uid": "u-data"}


@pytest.mark.parametrize(
    ("name", "the_claim", "volumes", "sc", "sel", "want"),
    [
        (
            "smallest fitting volume wins",
            claim(size="2Gi"),
            [volume("big", "10Gi"), volume("small", "1Gi"), volume("mid", "5Gi")],
            MANUAL,
            None,
            ClaimPlan(bind_to="mid", by_controller=True),
        ),
        (
            "access modes must be offered",
            claim(modes=("ReadWriteMany",)),
            [volume("rwo")],
            MANUAL,
            None,
            ClaimPlan(
                phase="Pending",
                event=("Normal", "FailedBinding", "no persistent volumes available for this claim"),
            ),
        ),
        (
            "class must match",
            claim(sc="fast"),
            [volume("pv1")],
            None,
            None,
            ClaimPlan(
                phase="Pending",
                event=(
                    "Warning",
                    "ProvisioningFailed",
                    'storageclass.storage.k8s.io "fast" not found',
                ),
            ),
        ),
        (
            "no class at all",
            claim(sc=""),
            [],
            None,
            None,
            ClaimPlan(
                phase="Pending",
                event=(
                    "Normal",
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set",
                ),
            ),
        ),
        (
            "a volume bound elsewhere is skipped",
            claim(),
            [volume("pv1", ref={"namespace": "x", "name": "y", "uid": "z"}, phase="Bound")],
            MANUAL,
            None,
            ClaimPlan(
                phase="Pending",
                event=("Normal", "FailedBinding", "no persistent volumes available for this claim"),
            ),
        ),
        (
            "a volume pre-bound by claimRef is taken, not marked as the controller's choice",
            claim(),
            [volume("big", "9Gi", ref={"namespace": "default", "name": "data"}), volume("small")],
            MANUAL,
            None,
            ClaimPlan(bind_to="big"),
        ),
        (
            "WaitForFirstConsumer without a node waits",
            claim(sc="local-path"),
            [volume("pv1", sc="local-path")],
            LOCAL,
            None,
            ClaimPlan(
                phase="Pending",
                event=(
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                ),
            ),
        ),
        (
            "WaitForFirstConsumer with a node takes a volume reachable from it",
            claim(sc="local-path"),
            [volume("a", sc="local-path", node="n1"), volume("b", sc="local-path", node="n2")],
            LOCAL,
            node("n2"),
            ClaimPlan(bind_to="b", by_controller=True),
        ),
        (
            "WaitForFirstConsumer with a node and no volume asks the provisioner",
            claim(sc="local-path"),
            [volume("a", sc="local-path", node="n1")],
            LOCAL,
            node("n2"),
            ClaimPlan(
                phase="Pending",
                annotations={
                    st.STORAGE_PROVISIONER: "rancher.io/local-path",
                    st.BETA_STORAGE_PROVISIONER: "rancher.io/local-path",
                },
                event=(
                    "Normal",
                    "ExternalProvisioning",
                    (
                        "Waiting for a volume to be created either by the external provisioner "
                        "'rancher.io/local-path' or manually by the system administrator. If "
                        "volume creation is delayed, please verify that the provisioner is "
                        "running and correctly registered."
                    ),
                ),
            ),
        ),
        (
            "a provisioned volume pre-bound to the claim binds even before a node is known",
            claim(sc="local-path"),
            [volume("pvc-1", sc="local-path", ref=REF, phase="Pending")],
            LOCAL,
            None,
            ClaimPlan(bind_to="pvc-1"),
        ),
        (
            "claim naming a volume binds it",
            claim(spec={"volumeName": "pv2"}),
            [volume("pv1"), volume("pv2")],
            MANUAL,
            None,
            ClaimPlan(bind_to="pv2"),
        ),
        (
            "claim naming a too small volume",
            claim(size="5Gi", spec={"volumeName": "pv1"}),
            [volume("pv1")],
            MANUAL,
            None,
            ClaimPlan(
                phase="Pending",
                event=(
                    "Warning",
                    "VolumeMismatch",
                    'Cannot bind to requested volume "pv1": requested PV is too small',
                ),
            ),
        ),
        (
            "claim naming a volume bound to another claim",
            claim(spec={"volumeName": "pv1"}),
            [volume("pv1", ref={"namespace": "default", "name": "other", "uid": "o"})],
            MANUAL,
            None,
            ClaimPlan(
                phase="Pending",
                event=(
                    "Warning",
                    "FailedBinding",
                    'volume "pv1" already bound to a different claim.',
                ),
            ),
        ),
        (
            "a bound claim whose volume is gone is Lost",
            claim(
                spec={"volumeName": "pv1"}, phase="Bound", annotations={st.BIND_COMPLETED: "yes"}
            ),
            [],
            MANUAL,
            None,
            ClaimPlan(
                phase="Lost",
                event=(
                    "Warning",
                    "ClaimLost",
                    "Bound claim has lost reference to PersistentVolume. "
                    "Data on the volume is lost!",
                ),
            ),
        ),
    ],
)
def test_decide_claim(
    name: str, the_claim: dict, volumes: list, sc: dict | None, sel: dict | None, want: ClaimPlan
) -> None:
    assert decide_claim(the_claim, volumes, sc, sel) == want, name


BOUND_CLAIM = claim(spec={"volumeName": "pv1"})


@pytest.mark.parametrize(
    ("name", "pv", "the_claim", "want"),
    [
        (
            "new volume becomes Available",
            volume("pv1", phase="Pending"),
            None,
            VolumePlan(phase="Available"),
        ),
        (
            "pre-bound by name stays Available",
            volume("pv1", ref={"namespace": "default", "name": "data"}),
            None,
            VolumePlan(),
        ),
        ("bound to its claim", volume("pv1", ref=REF), BOUND_CLAIM, VolumePlan(phase="Bound")),
        (
            "already Bound: nothing",
            volume("pv1", ref=REF, phase="Bound"),
            BOUND_CLAIM,
            VolumePlan(),
        ),
        (
            "claim gone, Retain: Released",
            volume("pv1", ref=REF, phase="Bound"),
            None,
            VolumePlan(phase="Released"),
        ),
        (
            "claim recreated with another uid is not this volume's claim",
            volume("pv1", ref=REF, phase="Bound"),
            claim(uid="other"),
            VolumePlan(phase="Released"),
        ),
        (
            "claim gone, Delete by a provisioner: Released for the provisioner",
            volume(
                "pv1",
                ref=REF,
                phase="Bound",
                policy="Delete",
                annotations={st.PROVISIONED_BY: "rancher.io/local-path"},
            ),
            None,
            VolumePlan(phase="Released"),
        ),
        (
            "claim gone, Delete with nobody to delete: Failed",
            volume("pv1", ref=REF, phase="Bound", policy="Delete"),
            None,
            VolumePlan(
                phase="Failed",
                message='error getting deleter volume plugin for volume "pv1": no deletable '
                "volume plugin matched",
                event=(
                    "Warning",
                    "VolumeFailedDelete",
                    'error getting deleter volume plugin for volume "pv1": no deletable '
                    "volume plugin matched",
                ),
            ),
        ),
        ("Released stays Released", volume("pv1", ref=REF, phase="Released"), None, VolumePlan()),
        (
            "claim bound elsewhere, controller's choice: unbind",
            volume("pv1", ref=REF, phase="Bound", annotations={st.BOUND_BY_CONTROLLER: "yes"}),
            claim(spec={"volumeName": "pv9"}),
            VolumePlan(phase="Available", unbind=True),
        ),
    ],
)
def test_decide_volume(name: str, pv: dict, the_claim: dict | None, want: VolumePlan) -> None:
    assert decide_volume(pv, the_claim) == want, name
