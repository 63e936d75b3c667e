"""One small valid object of every kind the apiserver serves, and how to change it.

Tests ask for `sample` (parametrized over every kind) or `build` (object builders).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

# (api prefix, plural, namespaced, object, a change that update tests make)
Sample = tuple[str, str, bool, dict[str, Any], dict[str, Any]]


def pod(name: str, labels: dict[str, str] | None = None, node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }


def replicaset(name: str) -> dict[str, Any]:
    d = deployment(name)
    d["kind"] = "ReplicaSet"
    return d


SAMPLES: list[Sample] = [
    ("/api/v1", "pods", True, pod("p"), {"metadata": {"labels": {"changed": "yes"}}}),
    (
        "/api/v1",
        "services",
        True,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]},
        },
        {"metadata": {"labels": {"changed": "yes"}}},
    ),
    (
        "/api/v1",
        "endpoints",
        True,
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}],
        },
        {"metadata": {"labels": {"changed": "yes"}}},
    ),
    (
        "/api/v1",
        "configmaps",
        True,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
        {"data": {"k": "changed"}},
    ),
    (
        "/api/v1",
        "secrets",
        True,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}},
        {"data": {"k": "dw=="}},
    ),
    (
        "/api/v1",
        "serviceaccounts",
        True,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
        {"metadata": {"labels": {"changed": "yes"}}},
    ),
    (
        "/api/v1",
        "events",
        True,
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "ev"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "NS"},
            "reason": "Testing",
            "message": "a test event",
            "type": "Normal",
        },
        {"message": "changed"},
    ),
    ("/apis/apps/v1", "deployments", True, deployment("d"), {"spec": {"replicas": 3}}),
    ("/apis/apps/v1", "replicasets", True, replicaset("r"), {"spec": {"replicas": 2}}),
    (
        "/apis/discovery.k8s.io/v1",
        "endpointslices",
        True,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "es", "labels": {"kubernetes.io/service-name": "s"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
        {"metadata": {"labels": {"changed": "yes"}}},
    ),
    (
        "/apis/coordination.k8s.io/v1",
        "leases",
        True,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40},
        },
        {"spec": {"holderIdentity": "node-b"}},
    ),
    (
        "/apis/events.k8s.io/v1",
        "events",
        True,
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "ev2"},
            "regarding": {"kind": "Pod", "name": "p", "namespace": "NS"},
            "reason": "Testing",
            "note": "a new-style event",
            "type": "Normal",
            "action": "Test",
            "reportingController": "skiff.io/test",
            "reportingInstance": "test-1",
            "eventTime": "2026-11-24T10:00:00.000000Z",
        },
        {"note": "changed"},
    ),
    (
        "/api/v1",
        "nodes",
        False,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "NAME", "labels": {"kubernetes.io/hostname": "x"}},
        },
        {"spec": {"unschedulable": True}},
    ),
    (
        "/api/v1",
        "namespaces",
        False,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "NAME"}},
        {"metadata": {"labels": {"changed": "yes"}}},
    ),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sample" in metafunc.fixturenames:
        ids = [
            f"{s[1]}.{s[0].split('/')[2] if s[0].startswith('/apis') else 'core'}" for s in SAMPLES
        ]
        metafunc.parametrize("sample", SAMPLES, ids=ids)


@pytest.fixture
def build() -> SimpleNamespace:
    return SimpleNamespace(pod=pod, deployment=deployment, replicaset=replicaset)
