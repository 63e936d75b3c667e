"""Health, readiness, metrics and the access log."""

from __future__ import annotations

import json
from typing import Any

import httpx


def test_metrics_count_requests_by_verb_resource_code(api: httpx.Client, namespace: str) -> None:
    api.get(f"/api/v1/namespaces/{namespace}/configmaps/missing")
    # a watch of its own: the long-running gauge has a series once one has been served
    api.get(
        f"/api/v1/namespaces/{namespace}/configmaps", params={"watch": "1", "timeoutSeconds": "1"}
    )
    text = api.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("apiserver_request_total{")]
    assert any(
        'verb="get"' in x and 'resource="configmaps"' in x and 'code="404"' in x for x in lines
    )
    assert "apiserver_request_duration_seconds_bucket" in text
    assert "etcd_request_duration_seconds_bucket" in text
    assert "apiserver_longrunning_requests" in text


def test_access_log_has_one_line_per_request(apiserver: Any, api: httpx.Client) -> None:
    api.get("/api/v1/namespaces/kube-system")
    lines = [line for line in apiserver.log.read_text().splitlines() if '"path":' in line]
    entries = [json.loads(line[line.index("{") :]) for line in lines]
    mine = [e for e in entries if e["path"] == "/api/v1/namespaces/kube-system"]
    assert mine and mine[-1]["code"] == 200
    assert mine[-1]["user"] == "kubernetes-admin"
    assert mine[-1]["verb"] == "get"


def test_discovery_documents(api: httpx.Client) -> None:
    core = api.get("/api/v1").json()
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["namespaced"] is True and pods["kind"] == "Pod"
    assert "po" in pods["shortNames"] and "all" in pods["categories"]
    assert "watch" in pods["verbs"]
    assert any(r["name"] == "pods/status" for r in core["resources"])
    groups = {g["name"] for g in api.get("/apis").json()["groups"]}
    assert {"apps", "discovery.k8s.io", "coordination.k8s.io", "events.k8s.io"} <= groups
    apps = api.get("/apis/apps/v1").json()
    assert any(r["name"] == "deployments/scale" for r in apps["resources"])
