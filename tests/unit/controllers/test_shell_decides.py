"""Decisions moved out of the shells into decide: node lifecycle (pod CIDR, health,
eviction), endpoints, and the namespace controller's actions."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controllers import endpoints, namespace, nodelifecycle
from controllers.nodelifecycle import (
    NOT_READY,
    UNREACHABLE,
    AssignCIDR,
    EvictPod,
    MarkReadyUnknown,
    NoCIDRLeft,
    SetTaints,
)

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)
FRESH = "2026-11-24T11:59:55Z"
STALE = "2026-11-24T11:50:00Z"


def node(cidr: str = "", ready: str = "True", heartbeat: str = FRESH, taints: Any = None) -> dict:
    return {
        "metadata": {"name": "n1", "creationTimestamp": STALE},
        "spec": {**({"podCIDR": cidr} if cidr else {}), "taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]
        },
    }


def pod(name: str, tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "n1", "tolerations": tolerations or []},
    }


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


@pytest.mark.parametrize(
    ("the_node", "cidr", "expected"),
    [
        (node(), "10.244.1.0/24", ["AssignCIDR"]),  # a new node gets the allocator's CIDR
        (node(), None, ["NoCIDRLeft"]),  # the cluster CIDR is used up
        (node(cidr="10.244.0.0/24"), "10.244.0.0/24", []),  # has one: nothing to do
        (node(cidr="10.244.0.0/24", heartbeat=STALE), None, ["MarkReadyUnknown", "SetTaints"]),
        (node(cidr="10.244.0.0/24", ready="False"), None, ["SetTaints"]),
        # back to Ready: the taint goes
        (
            node(
                cidr="10.244.0.0/24",
                taints=[{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": STALE}],
            ),
            None,
            ["SetTaints"],
        ),
    ],
)
def test_node_lifecycle_decide(the_node: dict, cidr: str | None, expected: list[str]) -> None:
    actions, _ = nodelifecycle.decide(the_node, None, [], NOW, grace=40.0, cidr=cidr)
    assert kinds(actions) == expected
    if "AssignCIDR" in expected:
        assert AssignCIDR("10.244.1.0/24") in actions
    if "NoCIDRLeft" in expected:
        assert isinstance(actions[0], NoCIDRLeft)


def test_a_silent_node_is_marked_unknown_and_tainted_unreachable() -> None:
    actions, _ = nodelifecycle.decide(
        node(cidr="x", heartbeat=STALE), None, [], NOW, grace=40.0, cidr="x"
    )
    mark = next(a for a in actions if isinstance(a, MarkReadyUnknown))
    assert mark.last_heartbeat == STALE
    taints = next(a for a in actions if isinstance(a, SetTaints))
    assert [k for k, _, _ in taints.taints] == [UNREACHABLE]


def test_not_ready_node_evicts_the_pods_that_do_not_tolerate_it() -> None:
    tainted = node(
        cidr="x",
        ready="False",
        taints=[{"key": NOT_READY, "effect": "NoExecute", "timeAdded": STALE}],
    )
    pods = [
        pod("plain"),  # tolerates nothing: goes at once
        pod("forever", [{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}]),
        pod(  # 300 s from the taint's time (10 min ago): due
            "expired",
            [
                {
                    "key": NOT_READY,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
        ),
        pod(  # 3600 s: stays, and the controller comes back when it runs out
            "waiting",
            [
                {
                    "key": NOT_READY,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 3600,
                }
            ],
        ),
    ]
    actions, next_check = nodelifecycle.decide(tainted, None, pods, NOW, grace=40.0, cidr="x")
    assert [a for a in actions if isinstance(a, EvictPod)] == [
        EvictPod("default", "plain"),
        EvictPod("default", "expired"),
    ]
    assert next_check == pytest.approx(3000.0)


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "uid": "s"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def ready_pod(name: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        "status": {
            "podIP": ip,
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_endpoints_decide_creates_then_updates_then_rests() -> None:
    pods = [ready_pod("a", "10.244.0.5")]
    first = endpoints.decide(SERVICE, pods, None, [])
    assert kinds(first) == ["CreateEndpoints", "CreateSlice"]
    subsets = first[0].subsets  # type: ignore[union-attr]
    assert subsets[0]["addresses"][0]["ip"] == "10.244.0.5"
    current = {"subsets": subsets}
    slice_ = {
        "metadata": {"name": "web"},
        "addressType": "IPv4",
        "endpoints": first[1].endpoints,  # type: ignore[union-attr]
        "ports": first[1].ports,  # type: ignore[union-attr]
    }
    assert endpoints.decide(SERVICE, pods, current, [slice_]) == []
    more = [*pods, ready_pod("b", "10.244.0.6")]
    assert kinds(endpoints.decide(SERVICE, more, current, [slice_])) == [
        "UpdateEndpoints",
        "UpdateSlice",
    ]


@pytest.mark.parametrize(
    ("service", "current", "expected"),
    [
        (None, {"subsets": []}, ["DeleteEndpoints"]),  # Service gone: its Endpoints go
        (None, None, []),
        ({**SERVICE, "spec": {"ports": []}}, None, []),  # no selector: hands off
    ],
)
def test_endpoints_decide_edges(service: Any, current: Any, expected: list[str]) -> None:
    assert kinds(endpoints.decide(service, [], current, [], name="web")) == expected


def ns_obj(deleting: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "team"}
    if deleting:
        meta["deletionTimestamp"] = FRESH
    return {"metadata": meta, "spec": {"finalizers": ["kubernetes"]}}


@pytest.mark.parametrize(
    ("obj", "contents", "expected"),
    [
        (ns_obj(deleting=False), [], []),
        (ns_obj(), [], ["Finalize"]),
        (
            ns_obj(),
            [
                ("v1", "Pod", {"metadata": {"name": "p"}}),
                ("v1", "ConfigMap", {"metadata": {"name": "c", "deletionTimestamp": FRESH}}),
            ],
            ["DeleteContent"],  # the one already going is waited for
        ),
    ],
)
def test_namespace_actions(obj: dict, contents: list, expected: list[str]) -> None:
    assert kinds(namespace.decide_actions(obj, contents)) == expected
