"""The scheduler against a real apiserver, with nodes that exist only as Node objects
(no kubelet, as kwok does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.polling import eventually

FAST = (
    "--leader-elect-lease-duration",
    "4",
    "--leader-elect-renew-deadline",
    "3",
    "--leader-elect-retry-period",
    "1",
)


@pytest.fixture
def cluster(start_apiserver: Any, start_component: Any) -> Iterator[tuple[Any, httpx.Client]]:
    server = start_apiserver()
    start_component("scheduler", server.kubeconfig, *FAST)
    with server.client() as api:
        yield server, api


def add_node(
    api: httpx.Client,
    name: str,
    *,
    cpu: str = "2",
    memory: str = "4Gi",
    labels: dict | None = None,
    taints: list | None = None,
) -> None:
    body = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
    }
    made = api.post("/api/v1/nodes", json=body)
    assert made.status_code == 201, made.text
    node = made.json()
    node["status"] = {
        "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
        "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert api.put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200


def add_pod(
    api: httpx.Client,
    name: str,
    *,
    cpu: str = "100m",
    memory: str = "64Mi",
    labels: dict | None = None,
    **spec: Any,
) -> None:
    container: dict[str, Any] = {
        "name": "c",
        "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    body = {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [container], **spec},
    }
    r = api.post("/api/v1/namespaces/default/pods", json=body)
    assert r.status_code == 201, r.text


def node_of(api: httpx.Client, name: str) -> str:
    return api.get(f"/api/v1/namespaces/default/pods/{name}").json()["spec"].get("nodeName", "")


def scheduled_condition(api: httpx.Client, name: str) -> dict[str, Any]:
    conds = (
        api.get(f"/api/v1/namespaces/default/pods/{name}")
        .json()
        .get("status", {})
        .get("conditions")
        or []
    )
    return next((c for c in conds if c["type"] == "PodScheduled"), {})


def test_full_node_leaves_pod_pending_until_a_node_arrives(cluster: Any) -> None:
    _, api = cluster
    add_node(api, "small", cpu="1", memory="1Gi")
    add_node(
        api,
        "tainted",
        taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
    )
    add_pod(api, "first", cpu="800m")
    assert eventually(lambda: node_of(api, "first"), what="first bound") == "small"
    add_pod(api, "second", cpu="800m")
    cond = eventually(
        lambda: (
            scheduled_condition(api, "second").get("reason") and scheduled_condition(api, "second")
        ),
        what="Unschedulable",
    )
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }."
    )
    # The event is recorded beside the status write, not before it: wait for it too.
    events = eventually(
        lambda: api.get(
            "/api/v1/namespaces/default/events",
            params={"fieldSelector": "involvedObject.name=second,reason=FailedScheduling"},
        ).json()["items"],
        what="FailedScheduling event",
    )
    assert events[0]["type"] == "Warning"
    add_node(api, "later")
    assert eventually(lambda: node_of(api, "second"), what="placed on new node") == "later"


def test_selectors_tolerations_and_host_ports(cluster: Any) -> None:
    _, api = cluster
    add_node(api, "gpu", labels={"accel": "gpu"})
    add_node(api, "plain")
    add_node(api, "special", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    add_pod(api, "wants-gpu", nodeSelector={"accel": "gpu"})
    add_pod(
        api,
        "db",
        nodeSelector={"kubernetes.io/hostname": "special"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
        ],
    )
    ports = [{"containerPort": 80, "hostPort": 8080}]
    add_pod(api, "web1", ports=ports, nodeSelector={"kubernetes.io/hostname": "plain"})
    add_pod(api, "web2", ports=ports, nodeSelector={"kubernetes.io/hostname": "plain"})
    assert eventually(lambda: node_of(api, "wants-gpu")) == "gpu"
    assert eventually(lambda: node_of(api, "db")) == "special"
    assert eventually(lambda: node_of(api, "web1")) == "plain"
    cond = eventually(lambda: scheduled_condition(api, "web2").get("message"))
    assert "1 node(s) didn't have free ports for the requested pod ports" in cond


def test_anti_affinity_spreads_one_per_node(cluster: Any) -> None:
    _, api = cluster
    for i in range(3):
        add_node(api, f"n{i}")
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "ha"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    for i in range(4):
        add_pod(api, f"ha{i}", labels={"app": "ha"}, affinity=anti)
    nodes = [
        eventually(
            lambda n=i: node_of(api, f"ha{n}") or scheduled_condition(api, f"ha{n}").get("reason"),
            what=f"ha{i}",
        )
        for i in range(4)
    ]
    placed = [n for n in nodes if n != "Unschedulable"]
    assert sorted(placed) == ["n0", "n1", "n2"]
    assert nodes.count("Unschedulable") == 1


def test_pod_affinity_follows_its_peer_into_a_zone(cluster: Any) -> None:
    _, api = cluster
    for i, zone in enumerate(["a", "b", "b", "c"]):
        add_node(api, f"z{i}", labels={"topology.kubernetes.io/zone": zone})
    zone_of = {"z0": "a", "z1": "b", "z2": "b", "z3": "c"}
    with_cache = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "cache"}},
                    "topologyKey": "topology.kubernetes.io/zone",
                }
            ]
        }
    }
    add_pod(api, "web0", labels={"app": "web"}, affinity=with_cache)  # no cache anywhere yet
    assert eventually(lambda: scheduled_condition(api, "web0").get("reason")) == "Unschedulable"
    assert "didn't match pod affinity rules" in scheduled_condition(api, "web0")["message"]
    add_pod(api, "cache", labels={"app": "cache"}, nodeName="z1")
    for i in range(1, 4):
        add_pod(api, f"web{i}", labels={"app": "web"}, affinity=with_cache)
    placed = [eventually(lambda n=i: node_of(api, f"web{n}"), what=f"web{i}") for i in range(4)]
    assert {zone_of[n] for n in placed} == {"b"}  # web0 too, once its peer exists


def test_topology_spread_across_zones(cluster: Any) -> None:
    _, api = cluster
    for i, zone in enumerate(["a", "a", "b"]):
        add_node(api, f"z{i}", labels={"zone": zone})
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "sp"}},
        }
    ]
    for i in range(4):
        add_pod(api, f"sp{i}", labels={"app": "sp"}, topologySpreadConstraints=spread)
        eventually(lambda n=i: node_of(api, f"sp{n}"), what=f"sp{i}")
    zones = {"z0": "a", "z1": "a", "z2": "b"}
    placed = [zones[node_of(api, f"sp{i}")] for i in range(4)]
    assert placed.count("a") == 2 and placed.count("b") == 2


def test_200_pods_on_20_nodes_never_overcommit(cluster: Any) -> None:
    _, api = cluster
    for i in range(20):
        add_node(api, f"w{i:02d}", cpu="1", memory="2Gi")
    for i in range(220):  # room for 200 (10 x 100m per node); 20 must stay Pending
        add_pod(api, f"load{i:03d}", cpu="100m", memory="64Mi")

    def bound() -> list[dict[str, Any]]:
        items = api.get("/api/v1/namespaces/default/pods").json()["items"]
        return [p for p in items if p["spec"].get("nodeName")]

    def unschedulable() -> int:
        items = api.get("/api/v1/namespaces/default/pods").json()["items"]
        return sum(
            1
            for p in items
            if not p["spec"].get("nodeName")
            and any(
                c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                for c in p.get("status", {}).get("conditions") or []
            )
        )

    eventually(lambda: len(bound()) == 200, timeout=90, what="200 bound")
    # The scheduler has tried every pod once it called the last 20 Unschedulable: only
    # then is "no more than 200 bound" a fact and not a moment.
    eventually(lambda: unschedulable() == 20, timeout=60, what="20 Unschedulable")
    pods = bound()
    assert len(pods) == 200
    per_node: dict[str, int] = {}
    for p in pods:
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    assert max(per_node.values()) == 10 and len(per_node) == 20


def test_two_schedulers_one_binds(start_apiserver: Any, start_component: Any) -> None:
    """Two schedulers behind one Lease: only the holder binds; when it dies, the lease
    moves to the survivor (after the lease duration) and the survivor goes on binding."""
    server = start_apiserver()
    schedulers = [start_component("scheduler", server.kubeconfig, *FAST) for _ in range(2)]
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"

    def holder(api: httpx.Client) -> str:
        r = api.get(lease)
        return str(r.json()["spec"].get("holderIdentity") or "") if r.status_code == 200 else ""

    def holding(identity: str) -> Any:
        """The scheduler whose log says it became leader as `identity`."""
        said = f"{identity} became leader of kube-system/kube-scheduler"
        return next((s for s in schedulers if said in s.log.read_text()), None)

    with server.client() as api:
        add_node(api, "only")
        first_holder = eventually(lambda: holder(api), what="a lease holder")
        leader = eventually(lambda: holding(first_holder), what="the leader's log")
        survivor = next(s for s in schedulers if s is not leader)
        for i in range(10):
            add_pod(api, f"p{i}")
        for i in range(10):
            assert eventually(lambda n=i: node_of(api, f"p{n}")) == "only"

        def scheduled() -> list[tuple[str, int]]:
            events = api.get(
                "/api/v1/namespaces/default/events", params={"fieldSelector": "reason=Scheduled"}
            ).json()["items"]
            return sorted((e["involvedObject"]["name"], e.get("count", 1)) for e in events)

        # Events are written beside the binding, not before it, and a SIGKILL loses those
        # still queued (as kube-scheduler's event broadcaster does): wait for them first.
        eventually(lambda: len(scheduled()) >= 10, what="the leader's Scheduled events")
        leader.kill()  # the one that leads: no clean release, the lease must expire
        assert survivor.proc.poll() is None
        new_holder = eventually(
            lambda: (h := holder(api)) != first_holder and h, what="the lease to move"
        )
        assert holding(new_holder) is survivor
        add_pod(api, "after")
        assert eventually(lambda: node_of(api, "after"), timeout=30) == "only"
        expected = sorted([*(f"p{i}" for i in range(10)), "after"])
        eventually(lambda: len(scheduled()) >= len(expected), what="Scheduled events")
        # Every pod bound, each exactly once (one Scheduled event each, never a repeat).
        assert scheduled() == [(name, 1) for name in expected]
