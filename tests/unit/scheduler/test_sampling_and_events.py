"""What the faster scheduler must still get right: which nodes a large cluster's
decision looks at and says it looked at, fast paths that still filter and score,
the node list the cache keeps between node changes, and Events written off the
binding path."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from scheduler.cache import Cache, NodeInfo
from scheduler.events import QueuedRecorder
from scheduler.framework import feasible_nodes_to_find, schedule


def node(name: str, *, taints: list | None = None, unschedulable: bool = False) -> dict:
    return {
        "metadata": {"name": name, "uid": f"u-{name}", "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


def pod(name: str = "p", cpu: str = "100m", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}],
            **spec,
        },
    }


def test_percentage_of_nodes_to_score_like_kube_scheduler() -> None:
    assert feasible_nodes_to_find(50) == 50
    assert feasible_nodes_to_find(100) == 100
    assert feasible_nodes_to_find(1000) == 420  # 50% - 1000/125 = 42%
    assert feasible_nodes_to_find(5000) == 500  # 10%
    assert feasible_nodes_to_find(10000) == 500  # the 5% floor
    assert feasible_nodes_to_find(150) == 100  # at least 100


def test_a_large_cluster_is_sampled_and_the_explanation_says_so() -> None:
    nodes = [NodeInfo(node(f"n{i:03d}")) for i in range(300)]
    decision = schedule(pod(), nodes, random.Random(0))
    wanted = feasible_nodes_to_find(300)
    assert decision.node is not None
    assert len(decision.filters) == wanted < 300
    assert len(decision.scored) == wanted
    why = decision.explanation(limit=6)
    assert why["nodesTotal"] == 300 and why["nodesLookedAt"] == wanted
    assert why["nodesPassed"] == wanted
    assert f"the other {300 - wanted} were not filtered or scored" in why["sampling"]
    # The chosen node is always among those shown, with its scores.
    assert decision.node in why["filters"] and decision.node in why["scores"]
    assert len(why["filters"]) <= 6
    # The next decision starts where this one stopped: every node gets its turn.
    nxt = schedule(pod("q"), nodes, random.Random(0))
    began = int(next(iter(decision.filters))[1:])
    assert next(iter(nxt.filters)) == f"n{(began + wanted) % 300:03d}"


def test_fast_paths_still_filter_taints_and_cordons_and_score_soft_taints() -> None:
    hard = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    soft = [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]
    tainted, cordoned = NodeInfo(node("t", taints=hard)), NodeInfo(node("c", unschedulable=True))
    disliked, plain = NodeInfo(node("d", taints=soft)), NodeInfo(node("p"))
    for seed in range(5):
        decision = schedule(pod(), [tainted, cordoned, disliked, plain], random.Random(seed))
        assert decision.node == "p"
    assert decision.filters["t"][-1] == ("TaintToleration", "node(s) had untolerated taint {k: v}")
    assert decision.filters["c"][-1] == ("NodeUnschedulable", "node(s) were unschedulable")
    assert decision.scores["d"]["TaintToleration"] == (1.0, 0.0, 0.0)
    assert decision.scores["p"]["TaintToleration"] == (0.0, 100.0, 300.0)
    # A pod that tolerates the taint may go there.
    tolerates = pod(tolerations=[{"key": "k", "operator": "Exists"}])
    assert schedule(tolerates, [tainted], random.Random(0)).node == "t"


def test_the_cache_keeps_its_node_list_until_nodes_change() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    first = cache.schedulable_nodes()
    assert [n.name for n in first] == ["a"] and cache.schedulable_nodes() is first
    cache.assume("ns/p", pod(), "a")  # pods change a NodeInfo, not the list
    assert cache.schedulable_nodes() is first and first[0].requested["cpu"] == 100
    cache.set_node(node("b", unschedulable=True))
    assert [n.name for n in cache.schedulable_nodes()] == ["a", "b"]
    assert cache.nodes["b"].unschedulable
    cache.set_node(node("b"))  # uncordoned: the parsed flags follow the new version
    assert not cache.nodes["b"].unschedulable
    cache.remove_node("a")
    assert [n.name for n in cache.schedulable_nodes()] == ["b"]


class FakeClient:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return body

    async def patch(self, *args: Any, **kw: Any) -> dict[str, Any]:
        return {}


def test_events_are_queued_then_written_in_order_and_dropped_when_full() -> None:
    async def scenario() -> None:
        client = FakeClient()
        recorder = QueuedRecorder(client, "default-scheduler", queue_size=2)  # type: ignore[arg-type]
        for name in ("a", "b", "c"):
            await recorder.event(pod(name), "Normal", "Scheduled", f"assigned ns/{name}")
        assert client.created == []  # nothing written on the caller's path
        assert recorder.dropped == 1  # the queue holds two; the third is dropped
        recorder.start()
        await asyncio.wait_for(recorder.drain(), 5)
        assert sorted(e["message"] for e in client.created) == ["assigned ns/a", "assigned ns/b"]
        await recorder.stop()

    asyncio.run(scenario())


class SlowClient(FakeClient):
    """A create that takes a while, so that writers overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return await super().create(body)


def test_events_of_one_pod_are_written_in_order_while_pods_go_side_by_side() -> None:
    async def scenario() -> None:
        client = SlowClient()
        recorder = QueuedRecorder(client, "default-scheduler")  # type: ignore[arg-type]
        recorder.start()
        pods = [pod(f"p{i}") for i in range(20)]
        for p in pods:
            await recorder.event(p, "Warning", "FailedScheduling", "0/3 nodes are available")
        for p in pods:
            await recorder.event(p, "Normal", "Scheduled", f"assigned {p['metadata']['name']}")
        await asyncio.wait_for(recorder.drain(), 10)
        await recorder.stop()
        assert len(client.created) == 40
        for p in pods:
            name = p["metadata"]["name"]
            reasons = [e["reason"] for e in client.created if e["involvedObject"]["name"] == name]
            assert reasons == ["FailedScheduling", "Scheduled"]
        assert client.most_in_flight > 1  # not one at a time

    asyncio.run(scenario())


def test_skiff_explain_says_which_nodes_were_not_scored() -> None:
    from cli.explain import scheduling_table, why_node

    nodes = [NodeInfo(node(f"n{i:03d}")) for i in range(300)]
    decision = schedule(pod(), nodes, random.Random(0))
    record = {"details": decision.explanation(limit=6)}
    lines = scheduling_table(record)
    wanted = feasible_nodes_to_find(300)
    assert lines[0] == (
        f"  (looked at {wanted} of 300 nodes: stopped once {wanted} fit "
        f"(percentageOfNodesToScore wants {wanted} at 300 nodes); the other "
        f"{300 - wanted} were not filtered or scored; 6 shown)"
    )
    assert any(line.endswith("<- chosen") for line in lines)
    assert why_node(record).startswith(f"{decision.node}: {wanted} of {wanted} nodes passed")
