"""Every scheduler plugin over tables, and the failure message as Kubernetes words it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from scheduler.cache import Cache, NodeInfo
from scheduler.framework import schedule
from scheduler.plugins import CycleState
from scheduler.plugins.interpod import InterPodAffinity
from scheduler.plugins.node import NodeAffinity, NodeName, NodeUnschedulable
from scheduler.plugins.resources import NodePorts, NodeResourcesFit
from scheduler.plugins.spread import PodTopologySpread
from scheduler.plugins.taints import TaintToleration


def node(
    name: str,
    *,
    cpu: str = "2",
    memory: str = "4Gi",
    pods: str = "110",
    labels: dict | None = None,
    taints: list | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
        },
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}},
    }


def pod(
    name: str = "p", *, cpu: str = "", memory: str = "", labels: dict | None = None, **spec: Any
) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "c", "image": "x", "resources": {"requests": requests}}
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": labels or {}},
        "spec": {"containers": [container], **spec},
    }


def info(n: dict[str, Any], *pods: dict[str, Any]) -> NodeInfo:
    i = NodeInfo(n)
    for p in pods:
        i.add(f"ns/{p['metadata']['name']}", p)
    return i


def check(plugin: Any, p: dict, i: NodeInfo, others: list[NodeInfo] | None = None) -> str | None:
    return plugin.filter(CycleState(p, others or [i]), i)


def test_node_unschedulable_and_name() -> None:
    assert (
        check(NodeUnschedulable(), pod(), info(node("a", unschedulable=True)))
        == "node(s) were unschedulable"
    )
    assert (
        check(NodeName(), pod(nodeName="b"), info(node("a")))
        == "node(s) didn't match the requested node name"
    )
    assert check(NodeName(), pod(nodeName="a"), info(node("a"))) is None


@pytest.mark.parametrize(
    ("op", "values", "fits"),
    [
        ("In", ["ssd"], True),
        ("In", ["hdd"], False),
        ("NotIn", ["ssd"], False),
        ("Exists", [], True),
        ("DoesNotExist", [], False),
        ("Gt", ["3"], True),
        ("Lt", ["3"], False),
    ],
)
def test_node_affinity_operators(op: str, values: list[str], fits: bool) -> None:
    key = "disk" if op not in ("Gt", "Lt") else "cores"
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": key, "operator": op, "values": values}]}
                ]
            }
        }
    }
    n = info(node("a", labels={"disk": "ssd", "cores": "8"}))
    assert (check(NodeAffinity(), pod(affinity=affinity), n) is None) is fits


def test_node_selector() -> None:
    n = info(node("a", labels={"zone": "x"}))
    assert check(NodeAffinity(), pod(nodeSelector={"zone": "x"}), n) is None
    assert (
        check(NodeAffinity(), pod(nodeSelector={"zone": "y"}), n)
        == "node(s) didn't match Pod's node affinity/selector"
    )


def test_taints_and_tolerations() -> None:
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    n = info(node("a", taints=[taint]))
    assert (
        check(TaintToleration(), pod(), n)
        == "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
    )
    tolerating = pod(
        tolerations=[
            {
                "key": "node-role.kubernetes.io/control-plane",
                "operator": "Exists",
                "effect": "NoSchedule",
            }
        ]
    )
    assert check(TaintToleration(), tolerating, n) is None
    soft = info(node("b", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    assert check(TaintToleration(), pod(), soft) is None
    assert TaintToleration().score(CycleState(pod(), [soft]), soft) == 1


def test_resources_fit() -> None:
    n = info(node("a", cpu="1", memory="1Gi", pods="2"), pod("x", cpu="600m"))
    assert check(NodeResourcesFit(), pod(cpu="500m"), n) == "Insufficient cpu"
    assert check(NodeResourcesFit(), pod(cpu="400m"), n) is None
    assert check(NodeResourcesFit(), pod(memory="2Gi"), n) == "Insufficient memory"
    full = info(node("b", pods="1"), pod("y"))
    assert check(NodeResourcesFit(), pod(), full) == "Too many pods"


def test_host_ports() -> None:
    port = [{"containerPort": 80, "hostPort": 8080}]
    n = info(node("a"), pod("x", ports=port))
    assert (
        check(NodePorts(), pod(ports=port), n)
        == "node(s) didn't have free ports for the requested pod ports"
    )
    assert check(NodePorts(), pod(ports=[{"containerPort": 80, "hostPort": 8081}]), n) is None


def test_required_anti_affinity_on_hostname() -> None:
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    busy = info(node("a"), pod("w1", labels={"app": "web"}))
    free = info(node("b"))
    incoming = pod(labels={"app": "web"}, affinity=anti)
    assert (
        check(InterPodAffinity(), incoming, busy, [busy, free])
        == "node(s) didn't match pod anti-affinity rules"
    )
    assert check(InterPodAffinity(), incoming, free, [busy, free]) is None


def test_topology_spread_do_not_schedule() -> None:
    constraint = {
        "maxSkew": 1,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "s"}},
    }
    a = info(node("a", labels={"zone": "1"}), pod("s1", labels={"app": "s"}))
    b = info(node("b", labels={"zone": "2"}))
    incoming = pod(labels={"app": "s"}, topologySpreadConstraints=[constraint])
    assert (
        check(PodTopologySpread(), incoming, a, [a, b])
        == "node(s) didn't match pod topology spread constraints"
    )
    assert check(PodTopologySpread(), incoming, b, [a, b]) is None


def test_failure_message_counts_reasons_like_kubernetes() -> None:
    tainted = info(
        node(
            "cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        )
    )
    small = [info(node(f"w{i}", memory="1Gi")) for i in range(2)]
    decision = schedule(pod(memory="2Gi"), [tainted, *small])
    assert decision.node is None
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient memory."
    )


def test_scoring_prefers_the_emptier_node_and_preferred_affinity() -> None:
    busy = info(node("busy"), pod("x", cpu="1500m", memory="3Gi"))
    idle = info(node("idle"))
    assert schedule(pod(cpu="100m"), [busy, idle], random.Random(1)).node == "idle"
    prefer = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["busy"]}
                        ]
                    },
                }
            ]
        }
    }
    assert schedule(pod(affinity=prefer), [busy, idle], random.Random(1)).node == "busy"


def test_cache_assume_and_forget() -> None:
    cache = Cache()
    cache.set_node(node("a", cpu="1"))
    cache.assume("ns/p", pod(cpu="800m"), "a")
    assert cache.nodes["a"].requested["cpu"] == 800
    cache.forget("ns/p")
    assert cache.nodes["a"].requested["cpu"] == 0


def affinity(kind: str, selector: dict, topology: str, **term: Any) -> dict[str, Any]:
    return {
        kind: {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": selector}, "topologyKey": topology, **term}
            ]
        }
    }


def test_required_pod_affinity_follows_the_peer_zone() -> None:
    with_cache = info(node("a", labels={"zone": "1"}), pod("cache", labels={"app": "cache"}))
    same_zone = info(node("b", labels={"zone": "1"}))
    other_zone = info(node("c", labels={"zone": "2"}))
    unlabelled = info(node("d"))
    nodes = [with_cache, same_zone, other_zone, unlabelled]
    incoming = pod(
        labels={"app": "web"}, affinity=affinity("podAffinity", {"app": "cache"}, "zone")
    )
    assert check(InterPodAffinity(), incoming, same_zone, nodes) is None
    assert check(InterPodAffinity(), incoming, with_cache, nodes) is None
    for n in (other_zone, unlabelled):
        assert check(InterPodAffinity(), incoming, n, nodes) == (
            "node(s) didn't match pod affinity rules"
        )
    # Only pods in the term's namespaces count: by default, the incoming pod's own.
    elsewhere = pod("cache", labels={"app": "cache"})
    elsewhere["metadata"]["namespace"] = "other"
    lonely = [
        info(node("a", labels={"zone": "1"}), elsewhere),
        info(node("c", labels={"zone": "2"})),
    ]
    assert check(InterPodAffinity(), incoming, lonely[1], lonely) == (
        "node(s) didn't match pod affinity rules"
    )
    everywhere = affinity("podAffinity", {"app": "cache"}, "zone", namespaceSelector={})
    assert check(InterPodAffinity(), pod(affinity=everywhere), lonely[0], lonely) is None


def test_first_pod_of_a_self_affine_group_may_go_anywhere() -> None:
    group = affinity("podAffinity", {"app": "db"}, "zone")
    a, b = info(node("a", labels={"zone": "1"})), info(node("b"))
    first = pod(labels={"app": "db"}, affinity=group)
    assert check(InterPodAffinity(), first, a, [a, b]) is None
    assert check(InterPodAffinity(), first, b, [a, b]) == "node(s) didn't match pod affinity rules"
    # A pod that does not match its own term has no such excuse.
    stranger = pod(labels={"app": "web"}, affinity=group)
    assert check(InterPodAffinity(), stranger, a, [a, b]) == (
        "node(s) didn't match pod affinity rules"
    )


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    loner = pod(
        "loner",
        labels={"app": "loner"},
        affinity=affinity("podAntiAffinity", {"app": "web"}, "kubernetes.io/hostname"),
    )
    taken, free = info(node("a"), loner), info(node("b"))
    web = pod(labels={"app": "web"})
    assert check(InterPodAffinity(), web, taken, [taken, free]) == (
        "node(s) didn't satisfy existing pods anti-affinity rules"
    )
    assert check(InterPodAffinity(), web, free, [taken, free]) is None
    assert check(InterPodAffinity(), pod(labels={"app": "db"}), taken, [taken, free]) is None


def test_preferred_affinity_and_anti_affinity_scores() -> None:
    def preferred(kind: str, weight: int) -> dict[str, Any]:
        term = {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}
        return {
            kind: {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": weight, "podAffinityTerm": term}
                ]
            }
        }

    near = info(node("a", labels={"zone": "1"}), pod("c1", labels={"app": "cache"}))
    far = info(node("b", labels={"zone": "2"}))
    plugin = InterPodAffinity()
    likes = CycleState(pod(affinity=preferred("podAffinity", 50)), [near, far])
    assert plugin.score(likes, near) == 50 and plugin.score(likes, far) == 0
    avoids = CycleState(pod(affinity=preferred("podAntiAffinity", 30)), [near, far])
    assert plugin.score(avoids, near) == -30 and plugin.score(avoids, far) == 0
