"""DaemonSet decide() and ControllerRevision history: tables."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controllers import history
from controllers.daemonset import (
    CreatePod,
    DeletePod,
    UpdateStatus,
    decide,
    node_of,
    pod_for_node,
    should_run,
)

NOW = datetime.datetime(2026, 12, 2, 3, 0, 0, tzinfo=datetime.UTC)
OLD, NEW = "oldhash", "newhash"


def ds(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {
            "metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "a", "image": "agent:1"}]},
        },
        "updateStrategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 1},
        "spec": base,
        "status": {},
    }


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict] | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def pod(
    name: str, on: str, hash_: str = NEW, *, ready: bool = True, phase: str = "Running"
) -> dict:
    status: dict[str, Any] = {"phase": phase}
    if ready:
        status["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T02:00:00Z"}
        ]
    return {
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "uid": f"uid-{name}",
            "labels": {"app": "agent", history.HASH_LABEL: hash_},
            "creationTimestamp": "2026-12-02T01:00:00Z",
        },
        "spec": {"nodeName": on},
        "status": status,
    }


def creates(plan: Any) -> list[str]:
    return [a.node for a in plan.actions if isinstance(a, CreatePod)]


def deletes(plan: Any) -> list[str]:
    return [a.name for a in plan.actions if isinstance(a, DeletePod)]


def test_one_pod_per_node_and_new_nodes_get_theirs() -> None:
    nodes = [node("n1"), node("n2"), node("n3")]
    plan = decide(ds(), nodes, [pod("p1", "n1")], NEW, NOW)
    assert creates(plan) == ["n2", "n3"]
    status = next(a.status for a in plan.actions if isinstance(a, UpdateStatus))
    assert status["desiredNumberScheduled"] == 3 and status["currentNumberScheduled"] == 1


@pytest.mark.parametrize(
    ("n", "template_spec", "runs"),
    [
        (node("n", {"disk": "ssd"}), {"nodeSelector": {"disk": "ssd"}}, True),
        (node("n", {"disk": "hdd"}), {"nodeSelector": {"disk": "ssd"}}, False),
        (
            node("n", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            {},
            False,
        ),
        (
            node("n", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]},
            True,
        ),
        # PreferNoSchedule does not keep daemons away.
        (node("n", taints=[{"key": "x", "effect": "PreferNoSchedule"}]), {}, True),
        # The tolerations every daemon pod gets: cordoned and NotReady nodes keep daemons.
        (
            node("n", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            {},
            True,
        ),
        (
            node("n", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
            {},
            True,
        ),
        (
            node(
                "n",
                taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            ),
            {},
            False,
        ),
        (
            node("n", {"zone": "a"}),
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "zone", "operator": "In", "values": ["b"]}
                                    ]
                                }
                            ]
                        }
                    }
                }
            },
            False,
        ),
    ],
)
def test_should_run(n: dict, template_spec: dict, runs: bool) -> None:
    d = ds()
    d["spec"]["template"]["spec"].update(template_spec)
    assert should_run(d, n) is runs


def test_pods_leave_nodes_that_no_longer_fit() -> None:
    d = ds()
    d["spec"]["template"]["spec"]["nodeSelector"] = {"role": "edge"}
    plan = decide(
        d, [node("n1", {"role": "edge"}), node("n2")], [pod("p1", "n1"), pod("p2", "n2")], NEW, NOW
    )
    assert deletes(plan) == ["p2"]


def test_failed_daemon_pod_is_replaced_with_a_warning() -> None:
    plan = decide(ds(), [node("n1")], [pod("p1", "n1", phase="Failed")], NEW, NOW)
    assert deletes(plan) == ["p1"] and creates(plan) == ["n1"]
    delete = next(a for a in plan.actions if isinstance(a, DeletePod))
    assert delete.why == "Found failed daemon pod kube-system/p1 on node n1, will try to kill it"


def test_rolling_update_max_unavailable_one_at_a_time() -> None:
    nodes = [node(f"n{i}") for i in range(3)]
    pods = [pod(f"p{i}", f"n{i}", OLD) for i in range(3)]
    assert deletes(decide(ds(), nodes, pods, NEW, NOW)) == ["p0"]
    # n0 has its new pod but it is not ready yet: nothing more goes.
    pods[0] = pod("q0", "n0", NEW, ready=False)
    assert deletes(decide(ds(), nodes, pods, NEW, NOW)) == []
    pods[0] = pod("q0", "n0", NEW)
    assert deletes(decide(ds(), nodes, pods, NEW, NOW)) == ["p1"]


def test_rolling_update_with_surge_starts_new_beside_old() -> None:
    d = ds(
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
    )
    nodes = [node("n0"), node("n1")]
    pods = [pod("p0", "n0", OLD), pod("p1", "n1", OLD)]
    plan = decide(d, nodes, pods, NEW, NOW)
    assert creates(plan) == ["n0"] and deletes(plan) == []
    pods.append(pod("q0", "n0", NEW))  # ready: the old one on n0 may go now
    plan = decide(d, nodes, pods, NEW, NOW)
    assert deletes(plan) == ["p0"] and creates(plan) == ["n1"]


def test_on_delete_replaces_nothing() -> None:
    d = ds(updateStrategy={"type": "OnDelete"})
    plan = decide(d, [node("n0")], [pod("p0", "n0", OLD)], NEW, NOW)
    assert deletes(plan) == [] and creates(plan) == []


def test_pod_is_aimed_at_its_node_and_tolerates_what_daemons_do() -> None:
    p = pod_for_node(ds(), "n7", NEW)
    assert node_of(p) == "n7"
    assert p["metadata"]["labels"][history.HASH_LABEL] == NEW
    keys = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in keys


# -- history ---------------------------------------------------------------------


def rev(owner: dict, number: int) -> dict:
    plan = history.plan_current(owner, [])
    assert plan.create is not None
    return {**plan.create, "revision": number}


def test_first_revision_is_created_as_1() -> None:
    plan = history.plan_current(ds(), [])
    assert plan.create is not None and plan.create["revision"] == 1
    assert plan.create["data"]["spec"]["template"]["$patch"] == "replace"
    assert plan.name == f"agent-{plan.hash}"


def test_new_template_gets_the_next_number_and_undo_renumbers_the_old() -> None:
    v1 = ds()
    v2 = ds()
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
    r1, r2 = rev(v1, 1), rev(v2, 2)
    assert history.plan_current(v2, [r1, r2]).create is None
    # Back to v1 (a rollout undo): revision 1 becomes revision 3.
    back = history.plan_current(v1, [r1, r2])
    assert back.create is None and back.renumber == (r1["metadata"]["name"], 3)


def test_revision_carries_the_change_cause() -> None:
    owner = ds()
    owner["metadata"]["annotations"] = {"kubernetes.io/change-cause": "agent:2 for the fix"}
    plan = history.plan_current(owner, [])
    assert plan.create is not None
    assert (
        plan.create["metadata"]["annotations"]["kubernetes.io/change-cause"]
        == "agent:2 for the fix"
    )


def test_history_limit_keeps_live_revisions() -> None:
    revs = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in range(1, 6)]
    assert history.history_to_delete(revs, {"r5", "r1"}, 2) == ["r2"]
