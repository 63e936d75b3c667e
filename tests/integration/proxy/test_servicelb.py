"""A LoadBalancer Service is never stuck at <pending>: the servicelb controller gives
it the Ready nodes' addresses, as k3s's ServiceLB does, and kubectl shows them."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import ApiServerProcess, ComponentProcess
from tests.polling import eventually


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

        eventually(lambda: "192.168.77.11" in ingress(), what="the node's address as ingress")
        shown = apiserver.kubectl("get", "svc", "-n", namespace, "web")
        assert "192.168.77.11" in shown and "<pending>" not in shown

        # The node stops being Ready: its address goes.
        current = api.get(f"/api/v1/nodes/{name}").json()
        current["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        assert api.put(f"/api/v1/nodes/{name}/status", json=current).status_code == 200
        eventually(lambda: "192.168.77.11" not in ingress(), what="the address to go")
    finally:
        api.delete(f"/api/v1/nodes/{name}")
