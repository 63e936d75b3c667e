"""StatefulSet decide(): ordered and parallel management, partitions, claims."""

from __future__ import annotations

import datetime
from typing import Any

from controllers import history
from controllers.statefulset import (
    CreateClaim,
    CreatePod,
    DeletePod,
    Revision,
    UpdateStatus,
    decide,
    new_pod,
)

NOW = datetime.datetime(2026, 12, 2, 3, 0, 0, tzinfo=datetime.UTC)
TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
}
V1 = Revision("web-v1", TEMPLATE)
V2 = Revision("web-v2", {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}})


def sts(replicas: int = 3, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": "web",
        "selector": {"matchLabels": {"app": "web"}},
        "template": TEMPLATE,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
    }
    base.update(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 1},
        "spec": base,
    }


def pod(ordinal: int, rev: str = "web-v1", *, ready: bool = True, deleting: bool = False) -> dict:
    p = new_pod(sts(), ordinal, Revision(rev, TEMPLATE))
    p["metadata"]["uid"] = f"uid-{ordinal}"
    p["status"] = {"phase": "Running" if ready else "Pending"}
    if ready:
        p["status"]["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T02:00:00Z"}
        ]
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-12-02T02:59:00Z"
    return p


def created(actions: list) -> list[str]:
    return [a.name for a in actions if isinstance(a, CreatePod)]


def deleted(actions: list) -> list[str]:
    return [a.name for a in actions if isinstance(a, DeletePod)]


def test_ordered_ready_creates_one_at_a_time() -> None:
    assert created(decide(sts(), [], set(), V1, V1, NOW)) == ["web-0"]
    assert created(decide(sts(), [pod(0, ready=False)], set(), V1, V1, NOW)) == []
    assert created(decide(sts(), [pod(0)], set(), V1, V1, NOW)) == ["web-1"]


def test_parallel_creates_all() -> None:
    assert created(decide(sts(podManagementPolicy="Parallel"), [], set(), V1, V1, NOW)) == [
        "web-0",
        "web-1",
        "web-2",
    ]


def test_scale_down_from_the_highest_ordinal_one_at_a_time() -> None:
    pods = [pod(i) for i in range(4)]
    assert deleted(decide(sts(1), pods, set(), V1, V1, NOW)) == ["web-3"]
    pods[3] = pod(3, deleting=True)
    assert deleted(decide(sts(1), pods, set(), V1, V1, NOW)) == []


def test_identity_hostname_subdomain_and_claims() -> None:
    s = sts(
        volumeClaimTemplates=[
            {"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
        ]
    )
    actions = decide(s, [], set(), V1, V1, NOW)
    claim = next(a for a in actions if isinstance(a, CreateClaim))
    assert claim.name == "www-web-0" and claim.claim["metadata"]["labels"] == {"app": "web"}
    p = next(a for a in actions if isinstance(a, CreatePod)).pod
    assert p["spec"]["hostname"] == "web-0" and p["spec"]["subdomain"] == "web"
    assert {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}} in p["spec"][
        "volumes"
    ]
    assert p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert p["metadata"]["labels"][history.HASH_LABEL] == "web-v1"
    # The claim exists already (the pod was deleted): only the pod is made again.
    again = decide(s, [], {"www-web-0"}, V1, V1, NOW)
    assert not any(isinstance(a, CreateClaim) for a in again)


def test_rolling_update_highest_first_down_to_partition() -> None:
    pods = [pod(i) for i in range(3)]
    assert deleted(decide(sts(), pods, set(), V1, V2, NOW)) == ["web-2"]
    pods[2] = pod(2, "web-v2", ready=False)  # replaced, not ready yet: wait
    assert deleted(decide(sts(), pods, set(), V1, V2, NOW)) == []
    pods[2] = pod(2, "web-v2")
    assert deleted(decide(sts(), pods, set(), V1, V2, NOW)) == ["web-1"]
    partitioned = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert deleted(decide(partitioned, pods, set(), V1, V2, NOW)) == []


def test_pod_below_partition_comes_back_at_the_current_revision() -> None:
    partitioned = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    pods = [pod(0), pod(2, "web-v2")]
    actions = decide(partitioned, pods, set(), V1, V2, NOW)
    made = next(a for a in actions if isinstance(a, CreatePod)).pod
    assert made["metadata"]["name"] == "web-1"
    assert made["metadata"]["labels"][history.HASH_LABEL] == "web-v1"


def test_on_delete_replaces_nothing_but_new_pods_are_new() -> None:
    s = sts(updateStrategy={"type": "OnDelete"})
    assert deleted(decide(s, [pod(i) for i in range(3)], set(), V1, V2, NOW)) == []
    made = next(
        a for a in decide(s, [pod(0), pod(2)], set(), V1, V2, NOW) if isinstance(a, CreatePod)
    ).pod
    assert made["metadata"]["labels"][history.HASH_LABEL] == "web-v2"


def test_status_moves_current_revision_when_the_update_is_complete() -> None:
    pods = [pod(i, "web-v2") for i in range(3)]
    status = next(
        a.status for a in decide(sts(), pods, set(), V1, V2, NOW) if isinstance(a, UpdateStatus)
    )
    assert status["currentRevision"] == "web-v2" and status["updatedReplicas"] == 3
    assert status["readyReplicas"] == 3 and status["currentReplicas"] == 3


def test_claims_stay_on_scale_down_unless_when_scaled_is_delete() -> None:
    from controllers.statefulset import ClaimOwnedByPod

    claims = [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]
    pods = [pod(i) for i in range(3)]
    kept = decide(sts(2, volumeClaimTemplates=claims), pods, {"www-web-2"}, V1, V1, NOW)
    assert not any(isinstance(a, ClaimOwnedByPod) for a in kept)
    policy = {"whenDeleted": "Retain", "whenScaled": "Delete"}
    s = sts(2, volumeClaimTemplates=claims, persistentVolumeClaimRetentionPolicy=policy)
    actions = decide(s, pods, {"www-web-2"}, V1, V1, NOW)
    assert ClaimOwnedByPod("www-web-2", "web-2", "uid-2") in actions
    assert deleted(actions) == ["web-2"]
