"""A LoadBalancer Service is never stuck at <pending>: the servicelb controller gives
it the Ready nodes' addresses, as k3s's ServiceLB does, and kubectl shows them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import ApiServerProcess, ComponentProcess


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


def test_load_balancer_gets_the_nodes_addresses(
    apiserver: ApiServerProcess,
    api: httpx.Client,
    namespace: str,
    start_component: Callable[..., ComponentProcess],
) -> None:
    name = f"lb-node-{namespace}"[:60]
    node = {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.77.11"}],
        },
    }
    created = api.post("/api/v1/nodes", json=node)
    assert created.status_code == 201, created.text
    try:
        start_component(
            "controllers",
            apiserver.kubeconfig,
            "--controllers",
            "servicelb",
            "--leader-elect",
            "false",
        )
        svcs = f"/api/v1/namespaces/{namespace}/services"
        body = {
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }
        assert api.post(svcs, json=body).status_code == 201

        def ingress() -> list[str]:
            status = api.get(f"{svcs}/web").json().get("status") or {}
            return [i["ip"] for i in (status.get("loadBalancer") or {}).get("ingress") or []]

        wait_for(lambda: "192.168.77.11" in ingress(), "the node's address as ingress")
        shown = apiserver.kubectl("get", "svc", "-n", namespace, "web")
        assert "192.168.77.11" in shown and "<pending>" not in shown

        # The node stops being Ready: its address goes.
        current = api.get(f"/api/v1/nodes/{name}").json()
        current["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        assert api.put(f"/api/v1/nodes/{name}/status", json=current).status_code == 200
        wait_for(lambda: "192.168.77.11" not in ingress(), "the address to go")
    finally:
        api.delete(f"/api/v1/nodes/{name}")
