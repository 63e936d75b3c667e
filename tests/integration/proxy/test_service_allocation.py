"""ClusterIPs and NodePorts as a user meets them: never given twice (also under
concurrent creates and across apiserver restarts), a requested one honoured when
free and refused with 422 when taken or out of range, released on delete and
when a Service stops needing it, and kept across updates."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import ApiServerProcess


def body(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"metadata": {"name": name}, "spec": spec}


async def _create_all(
    server: ApiServerProcess, path: str, bodies: list[dict]
) -> list[httpx.Response]:
    async with server.async_client() as client:
        return list(await asyncio.gather(*(client.post(path, json=b) for b in bodies)))


def test_concurrent_creates_never_share_a_cluster_ip(
    apiserver: ApiServerProcess, api: httpx.Client, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/services"
    wanted = "10.96.7.7"
    same = asyncio.run(
        _create_all(apiserver, path, [body(f"same-{i}", clusterIP=wanted) for i in range(12)])
    )
    codes = sorted(r.status_code for r in same)
    assert codes == [201] + [422] * 11, codes
    refused = next(r for r in same if r.status_code == 422).json()
    assert refused["reason"] == "Invalid"
    assert "provided IP is already allocated" in refused["message"]

    many = asyncio.run(_create_all(apiserver, path, [body(f"any-{i}") for i in range(40)]))
    assert {r.status_code for r in many} == {201}
    ips = [r.json()["spec"]["clusterIP"] for r in many]
    assert len(set(ips)) == 40 and wanted not in ips
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12") for ip in ips)
    assert not {"10.96.0.1", "10.96.0.10"} & set(ips)  # kubernetes and DNS keep theirs


def test_requested_ip_and_port_honoured_refused_and_released(
    api: httpx.Client, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/services"
    r = api.post(path, json=body("a", clusterIP="10.96.8.8"))
    assert r.status_code == 201 and r.json()["spec"]["clusterIPs"] == ["10.96.8.8"]

    out = api.post(path, json=body("b", clusterIP="10.200.0.1"))
    assert out.status_code == 422
    assert "not in the valid range" in out.json()["message"]
    assert out.json()["details"]["causes"][0]["field"] == "spec.clusterIPs"

    np = {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30777}]}
    assert api.post(path, json=body("c", **np)).status_code == 201
    taken = api.post(path, json=body("d", **np))
    assert taken.status_code == 422 and "already allocated" in taken.json()["message"]
    assert taken.json()["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    wide = api.post(path, json=body("e", type="NodePort", ports=[{"port": 80, "nodePort": 80}]))
    assert wide.status_code == 422 and "30000-32767" in wide.json()["message"]
    # A refused create keeps nothing: the IP it would have had is free.
    assert (
        api.post(
            path,
            json=body(
                "f", clusterIP="10.96.8.9", type="NodePort", ports=[{"port": 80, "nodePort": 30777}]
            ),
        ).status_code
        == 422
    )
    assert api.post(path, json=body("g", clusterIP="10.96.8.9")).status_code == 201

    # Deleting frees both.
    assert api.delete(f"{path}/a").status_code == 200
    assert api.delete(f"{path}/c").status_code == 200
    assert api.post(path, json=body("a2", clusterIP="10.96.8.8")).status_code == 201
    assert api.post(path, json=body("c2", **np)).status_code == 201


def test_headless_and_external_name_take_no_ip(api: httpx.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/services"
    headless = api.post(path, json=body("h", clusterIP="None")).json()
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    ext = api.post(
        path,
        json={
            "metadata": {"name": "x"},
            "spec": {"type": "ExternalName", "externalName": "example.org"},
        },
    )
    assert ext.status_code == 201, ext.text
    assert not ext.json()["spec"].get("clusterIP")


def test_type_changes_allocate_and_release_node_ports(api: httpx.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/services"
    svc = api.post(path, json=body("t")).json()
    ip = svc["spec"]["clusterIP"]
    svc["spec"]["type"] = "NodePort"
    svc["spec"]["ports"][0]["nodePort"] = 30901
    r = api.put(f"{path}/t", json=svc)
    assert r.status_code == 200, r.text
    svc = r.json()
    assert svc["spec"]["clusterIP"] == ip and svc["spec"]["ports"][0]["nodePort"] == 30901
    taken = api.post(path, json=body("u", type="NodePort", ports=[{"port": 80, "nodePort": 30901}]))
    assert taken.status_code == 422

    # An update that leaves nodePort out keeps it; a type without NodePorts frees it.
    svc["spec"]["ports"][0].pop("nodePort")
    svc = api.put(f"{path}/t", json=svc).json()
    assert svc["spec"]["ports"][0]["nodePort"] == 30901
    svc["spec"]["type"] = "ClusterIP"
    svc["spec"]["ports"][0].pop("nodePort")
    r = api.put(f"{path}/t", json=svc)
    assert r.status_code == 200, r.text
    assert "nodePort" not in r.json()["spec"]["ports"][0]
    free = api.post(path, json=body("u", type="NodePort", ports=[{"port": 80, "nodePort": 30901}]))
    assert free.status_code == 201, free.text

    # A NodePort Service given one more port gets one more nodePort.
    svc = api.get(f"{path}/u").json()
    svc["spec"]["ports"].append({"name": "b", "port": 81})
    svc["spec"]["ports"][0]["name"] = "a"
    r = api.put(f"{path}/u", json=svc)
    assert r.status_code == 200, r.text
    ports = r.json()["spec"]["ports"]
    assert ports[0]["nodePort"] == 30901 and 30000 <= ports[1]["nodePort"] <= 32767
    # and a changed nodePort moves the allocation.
    svc = r.json()
    svc["spec"]["ports"][0]["nodePort"] = 30902
    assert api.put(f"{path}/u", json=svc).status_code == 200
    assert (
        api.post(
            path, json=body("v", type="NodePort", ports=[{"port": 80, "nodePort": 30901}])
        ).status_code
        == 201
    )


def test_allocations_survive_an_apiserver_restart(
    start_apiserver: Callable[..., ApiServerProcess],
) -> None:
    server = start_apiserver()
    with server.client() as api:
        assert (
            api.post(
                "/api/v1/namespaces/default/services",
                json=body(
                    "keep",
                    clusterIP="10.96.9.9",
                    type="NodePort",
                    ports=[{"port": 80, "nodePort": 31999}],
                ),
            ).status_code
            == 201
        )
    server.stop()
    server.start()
    with server.client() as api:
        again = api.post(
            "/api/v1/namespaces/default/services", json=body("dup", clusterIP="10.96.9.9")
        )
        assert again.status_code == 422 and "already allocated" in again.json()["message"]
        port = api.post(
            "/api/v1/namespaces/default/services",
            json=body("dup2", type="NodePort", ports=[{"port": 80, "nodePort": 31999}]),
        )
        assert port.status_code == 422


def test_kubectl_shows_the_refusal(apiserver: ApiServerProcess, namespace: str) -> None:
    out = apiserver.kubectl(
        "create", "service", "clusterip", "dup", "--tcp=80", "--clusterip=10.96.0.1",
        "-n", namespace, check=False,
    )  # fmt: skip
    assert 'Service "dup" is invalid' in out and "provided IP is already allocated" in out, out
    out = apiserver.kubectl(
        "create", "service", "nodeport", "np", "--tcp=80", "--node-port=80", "-n", namespace,
        check=False,
    )  # fmt: skip
    assert 'Service "np" is invalid' in out and "30000-32767" in out, out
