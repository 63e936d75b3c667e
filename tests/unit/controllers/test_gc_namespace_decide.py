"""Garbage collection and namespace deletion decisions."""

from __future__ import annotations

from typing import Any

from controllers.garbagecollector import (
    DeleteDependent,
    Disown,
    RemoveFinalizer,
    decide_dependent,
    decide_owner,
)
from controllers.namespace import decide as decide_namespace


def obj(
    name: str,
    uid: str,
    *,
    owners: list[dict] | None = None,
    finalizers: list | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2026-11-24T12:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


OWNER_REF = {"kind": "ReplicaSet", "name": "rs", "uid": "rs1", "blockOwnerDeletion": True}


def test_background_deletes_orphaned_dependents_only() -> None:
    dependent = obj("p", "p1", owners=[OWNER_REF])
    assert decide_dependent(dependent, {"rs1": False}) == DeleteDependent(
        "v1", "Pod", "ns", "p", "p1"
    )
    assert decide_dependent(dependent, {"rs1": True}) is None
    two = obj("p", "p1", owners=[OWNER_REF, {**OWNER_REF, "uid": "other"}])
    assert decide_dependent(two, {"rs1": False, "other": True}) is None


def test_foreground_deletes_dependents_then_removes_finalizer() -> None:
    owner = obj("rs", "rs1", finalizers=["foregroundDeletion"], deleting=True)
    dependent = obj("p", "p1", owners=[OWNER_REF])
    actions = decide_owner(owner, [dependent])
    assert actions == [DeleteDependent("v1", "Pod", "ns", "p", "p1", "Foreground")]
    assert decide_owner(owner, []) == [RemoveFinalizer("foregroundDeletion")]


def test_orphan_disowns_then_removes_finalizer() -> None:
    owner = obj("rs", "rs1", finalizers=["orphan"], deleting=True)
    dependent = obj("p", "p1", owners=[OWNER_REF])
    assert decide_owner(owner, [dependent]) == [
        Disown("v1", "Pod", "ns", "p", "rs1"),
        RemoveFinalizer("orphan"),
    ]


def test_namespace_steps() -> None:
    ns = {"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}}
    assert decide_namespace(ns, 3) == "wait"
    ns["metadata"]["deletionTimestamp"] = "2026-11-24T12:00:00Z"
    assert decide_namespace(ns, 3) == "delete-contents"
    assert decide_namespace(ns, 0) == "finalize"


def test_the_collector_follows_every_listable_watchable_deletable_kind_but_events() -> None:
    from controllers.garbagecollector import monitored

    all_verbs = ("create", "delete", "get", "list", "patch", "update", "watch")
    found = [
        ("v1", "ConfigMap", all_verbs),
        ("v1", "Namespace", all_verbs),
        ("v1", "Event", all_verbs),
        ("events.k8s.io/v1", "Event", all_verbs),
        ("v1", "ComponentStatus", ("get", "list")),
        ("authentication.k8s.io/v1", "TokenReview", ("create",)),
        ("stable.example.com/v1", "CronTab", all_verbs),
        ("v1", "ConfigMap", all_verbs),
    ]
    assert monitored(found) == [
        ("v1", "ConfigMap"),
        ("v1", "Namespace"),
        ("stable.example.com/v1", "CronTab"),
    ]
