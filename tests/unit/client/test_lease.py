"""How a Lease's spec changes when its holder renews it or another takes it over."""

from __future__ import annotations

from api.meta import now_micro, parse_time
from client.lease import held_spec, new_lease

T0 = "2026-11-24T12:00:00.000000Z"
T1 = "2026-11-24T12:00:10.123456Z"


def test_first_holder_acquires() -> None:
    assert held_spec(None, holder="node-a", duration_seconds=40, renew_time=T0) == {
        "holderIdentity": "node-a",
        "leaseDurationSeconds": 40,
        "renewTime": T0,
        "acquireTime": T0,
        "leaseTransitions": 0,
    }


def test_renewal_moves_renew_time_only() -> None:
    first = held_spec(None, holder="node-a", duration_seconds=40, renew_time=T0)
    again = held_spec(first, holder="node-a", duration_seconds=40, renew_time=T1)
    assert again == {**first, "renewTime": T1}


def test_takeover_counts_a_transition() -> None:
    first = held_spec(None, holder="a", duration_seconds=15, renew_time=T0)
    taken = held_spec(first, holder="b", duration_seconds=15, renew_time=T1)
    assert taken["holderIdentity"] == "b"
    assert taken["acquireTime"] == T1 and taken["leaseTransitions"] == 1


def test_new_lease_and_micro_time() -> None:
    spec = held_spec(None, holder="node-a", duration_seconds=40, renew_time=now_micro())
    owner = [{"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "u"}]
    lease = new_lease(namespace="kube-node-lease", name="node-a", spec=spec, owner_references=owner)
    assert lease["apiVersion"] == "coordination.k8s.io/v1" and lease["kind"] == "Lease"
    assert lease["metadata"] == {
        "name": "node-a",
        "namespace": "kube-node-lease",
        "ownerReferences": owner,
    }
    # MicroTime as Kubernetes formats it: six fractional digits and Z.
    renew = lease["spec"]["renewTime"]
    assert len(renew.split(".")[1]) == 7 and renew.endswith("Z")
    assert parse_time(renew) is not None
