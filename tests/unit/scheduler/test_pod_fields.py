"""What the scheduler's pod informer keeps of a pod: exactly the fields scheduler/
reads (scheduler/pod_fields.py), and the plugins decide the same on it."""

from __future__ import annotations

import random

import pytest

from api.pods import host_ports, pod_requests
from client.informer import SharedValues
from scheduler import pod_fields
from scheduler.cache import Cache
from scheduler.framework import schedule
from scheduler.pod_fields import for_scheduler
from scheduler.scheduler import needs_scheduling
from tests.pod_sample import pod

KEPT = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-5d9c7b8f6d-abcde",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "42",
        "creationTimestamp": "2026-12-02T09:00:00Z",
        "deletionTimestamp": "2026-12-02T11:00:00Z",
        "labels": {"app": "web", "pod-template-hash": "5d9c7b8f6d"},
    },
    "spec": {
        "nodeName": "n1",
        "schedulerName": "default-scheduler",
        "priority": 1000,
        "nodeSelector": {"disk": "ssd"},
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}},
        "tolerations": [
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
        ],
        "overhead": {"cpu": "5m"},
        "containers": [
            {
                "name": "web",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {
                        "containerPort": 9090,
                        "hostPort": 9090,
                        "hostIP": "127.0.0.1",
                        "protocol": "TCP",
                    },
                ],
            }
        ],
        "initContainers": [
            {"name": "init", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
        ],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T09:01:00Z"}
        ],
        "nominatedNodeName": "n2",
    },
}


def test_keeps_exactly_the_fields_the_scheduler_reads() -> None:
    assert for_scheduler(pod()) == KEPT


def test_what_the_plugins_compute_is_unchanged() -> None:
    full, kept = pod(), for_scheduler(pod())
    assert pod_requests(kept) == pod_requests(full)
    assert host_ports(kept) == host_ports(full) == {("127.0.0.1", "TCP", 9090)}
    pending = pod()
    del pending["spec"]["nodeName"], pending["metadata"]["deletionTimestamp"]
    pending["status"]["phase"] = "Pending"
    assert needs_scheduling(for_scheduler(pending)) and needs_scheduling(pending)


def test_a_pending_pod_gets_the_same_decision() -> None:
    nodes_labels = [{"disk": "ssd", "zone": "a"}, {"disk": "hdd", "zone": "b"}]
    pending = pod()
    del pending["spec"]["nodeName"], pending["metadata"]["deletionTimestamp"]
    pending["spec"]["volumes"] = [v for v in pending["spec"]["volumes"] if v["name"] != "data"]
    cache = Cache()
    for i, labels in enumerate(nodes_labels):
        cache.set_node(
            {
                "metadata": {"name": f"n{i}", "uid": f"n-{i}", "labels": labels},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
            }
        )
    full = schedule(pending, cache.schedulable_nodes(), random.Random(1))
    kept = schedule(for_scheduler(pending), cache.schedulable_nodes(), random.Random(1))
    assert full.node == kept.node == "n0"


def test_missing_and_null_fields_stay_missing_and_null() -> None:
    bare = {
        "metadata": {"name": "p", "namespace": "ns", "labels": None},
        "spec": {"containers": None},
    }
    assert for_scheduler(bare) == bare


def test_a_pod_without_claims_keeps_no_volumes() -> None:
    p = pod()
    p["spec"]["volumes"] = [v for v in p["spec"]["volumes"] if v["name"] != "data"]
    assert "volumes" not in for_scheduler(p)["spec"]


def test_equal_values_of_pods_are_kept_once() -> None:
    a, b = for_scheduler(pod()), for_scheduler(pod())
    assert a == b and a is not b
    for part, name in [("spec", "containers"), ("spec", "tolerations"), ("metadata", "labels")]:
        assert a[part][name] is b[part][name]
    other = pod()
    other["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "20m"
    c = for_scheduler(other)
    assert c["spec"]["containers"] is not a["spec"]["containers"]
    assert pod_requests(c)["cpu"] == 25  # 20m (more than the init container's 10m) + 5m overhead
    assert c["spec"]["tolerations"] is a["spec"]["tolerations"]


def test_the_table_of_shared_values_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pod_fields, "_SHARED", SharedValues(limit=3))
    for i in range(10):
        p = pod()
        p["metadata"]["labels"]["i"] = str(i)
        assert for_scheduler(p)["metadata"]["labels"]["i"] == str(i)
        assert len(pod_fields._SHARED.kept) <= 3
