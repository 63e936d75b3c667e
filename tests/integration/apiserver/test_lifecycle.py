"""Status and scale subresources, generation, finalizers, graceful deletion, dryRun,
binding, and namespace lifecycle — each as a client sees it over HTTPS."""

from __future__ import annotations

from typing import Any

import httpx

MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def test_status_is_separate_from_spec(api: httpx.Client, namespace: str, build: Any) -> None:
    url = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    r = api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=build.deployment("web"))
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["generation"] == 1

    # A status write through the main resource is ignored ...
    body = r.json()
    body["status"] = {"replicas": 7}
    body["spec"]["replicas"] = 2
    main = api.put(url, json=body).json()
    assert main.get("status", {}).get("replicas") is None
    assert main["spec"]["replicas"] == 2
    assert main["metadata"]["generation"] == 2

    # ... and a write to /status changes only status, not spec or generation.
    main["status"] = {"replicas": 7, "observedGeneration": 2}
    main["spec"]["replicas"] = 9
    status = api.put(url + "/status", json=main)
    assert status.status_code == 200, status.text
    assert status.json()["status"]["replicas"] == 7
    assert status.json()["spec"]["replicas"] == 2
    assert status.json()["metadata"]["generation"] == 2

    # Metadata-only changes do not move generation.
    labelled = api.patch(url, json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE).json()
    assert labelled["metadata"]["generation"] == 2


def test_scale_subresource(api: httpx.Client, namespace: str, build: Any) -> None:
    api.post(f"/apis/apps/v1/namespaces/{namespace}/replicasets", json=build.replicaset("rs"))
    url = f"/apis/apps/v1/namespaces/{namespace}/replicasets/rs/scale"
    scale = api.get(url).json()
    assert scale["kind"] == "Scale"
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == "app=rs"

    patched = api.patch(url, json={"spec": {"replicas": 4}}, headers=MERGE)
    assert patched.status_code == 200, patched.text
    assert patched.json()["spec"]["replicas"] == 4
    rs = api.get(f"/apis/apps/v1/namespaces/{namespace}/replicasets/rs").json()
    assert rs["spec"]["replicas"] == 4

    scale = patched.json()
    scale["spec"]["replicas"] = 2
    assert api.put(url, json=scale).json()["spec"]["replicas"] == 2
    scale["spec"]["replicas"] = 3  # stale resourceVersion now
    stale = api.put(url, json=scale)
    assert stale.status_code == 409
    negative = api.patch(url, json={"spec": {"replicas": -1}}, headers=MERGE)
    assert negative.status_code == 422
    assert negative.json()["details"]["causes"][0]["field"] == "spec.replicas"


def test_optimistic_concurrency(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps/cc"
    api.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "cc"}})
    first = api.get(url).json()
    second = api.get(url).json()
    first["data"] = {"who": "first"}
    assert api.put(url, json=first).status_code == 200
    second["data"] = {"who": "second"}
    lost = api.put(url, json=second)
    assert lost.status_code == 409
    assert lost.json()["reason"] == "Conflict"
    assert "the object has been modified" in lost.json()["message"]
    assert api.get(url).json()["data"] == {"who": "first"}


def test_patches(api: httpx.Client, namespace: str, build: Any) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps/pc"
    api.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        json={"metadata": {"name": "pc"}, "data": {"a": "1", "b": "2"}},
    )
    merged = api.patch(url, json={"data": {"a": None, "c": "3"}}, headers=MERGE)
    assert merged.json()["data"] == {"b": "2", "c": "3"}
    ops = [
        {"op": "replace", "path": "/data/b", "value": "20"},
        {"op": "add", "path": "/data/d", "value": "4"},
    ]
    patched = api.patch(url, json=ops, headers=JSON_PATCH)
    assert patched.json()["data"] == {"b": "20", "c": "3", "d": "4"}
    failed = api.patch(
        url, json=[{"op": "test", "path": "/data/b", "value": "nope"}], headers=JSON_PATCH
    )
    assert failed.status_code == 422
    # Strategic merge patch merges containers by name instead of replacing the list.
    pods = f"/api/v1/namespaces/{namespace}/pods"
    pod = build.pod("smp")
    pod["spec"]["containers"].append({"name": "side", "image": "busybox:1.36"})
    api.post(pods, json=pod)
    smp = api.patch(
        f"{pods}/smp",
        json={"spec": {"containers": [{"name": "side", "image": "busybox:1.37"}]}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert smp.status_code == 200, smp.text
    images = {c["name"]: c["image"] for c in smp.json()["spec"]["containers"]}
    assert images == {"main": "busybox:1.36", "side": "busybox:1.37"}


def test_finalizers_hold_deletion(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps/held"
    api.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        json={"metadata": {"name": "held", "finalizers": ["skiff.io/test"]}},
    )
    r = api.delete(url)
    assert r.status_code == 200
    held = api.get(url)
    assert held.status_code == 200
    assert held.json()["metadata"]["deletionTimestamp"]
    # New finalizers may not be added once deleting; removing the last one deletes.
    cleared = api.patch(url, json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert cleared.status_code == 200, cleared.text
    assert api.get(url).status_code == 404


def test_graceful_pod_deletion(api: httpx.Client, namespace: str, build: Any) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    api.post(pods, json=build.pod("unbound"))
    api.post(pods, json=build.pod("bound", node="node-a"))
    # Never scheduled: removed at once.
    api.delete(f"{pods}/unbound")
    assert api.get(f"{pods}/unbound").status_code == 404
    # Bound to a node: marked with a grace period for the kubelet to honour.
    r = api.delete(f"{pods}/bound", params={"gracePeriodSeconds": 20})
    assert r.status_code == 200
    pod = api.get(f"{pods}/bound").json()
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 20
    assert pod["metadata"]["deletionTimestamp"]
    # The kubelet's final delete with grace 0 removes it.
    assert api.delete(f"{pods}/bound", params={"gracePeriodSeconds": 0}).status_code == 200
    assert api.get(f"{pods}/bound").status_code == 404


def test_delete_preconditions(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps/pre"
    made = api.post(
        f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "pre"}}
    )
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}
    refused = api.request("DELETE", url, json=body)
    assert refused.status_code == 409
    assert "Precondition failed" in refused.json()["message"]
    body["preconditions"]["uid"] = made.json()["metadata"]["uid"]
    assert api.request("DELETE", url, json=body).status_code == 200
    assert api.get(url).status_code == 404


def test_dry_run_stores_nothing(api: httpx.Client, namespace: str, build: Any) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    r = api.post(cms, params={"dryRun": "All"}, json={"metadata": {"name": "dry"}})
    assert r.status_code == 201
    assert r.json()["metadata"]["name"] == "dry"
    assert api.get(f"{cms}/dry").status_code == 404

    api.post(cms, json={"metadata": {"name": "wet"}, "data": {"a": "1"}})
    r = api.patch(f"{cms}/wet", params={"dryRun": "All"}, json={"data": {"a": "2"}}, headers=MERGE)
    assert r.json()["data"]["a"] == "2"
    assert api.get(f"{cms}/wet").json()["data"]["a"] == "1"
    api.delete(f"{cms}/wet", params={"dryRun": "All"})
    assert api.get(f"{cms}/wet").status_code == 200
    svc = {"metadata": {"name": "dry-svc"}, "spec": {"ports": [{"port": 80}]}}
    r = api.post(f"/api/v1/namespaces/{namespace}/services", params={"dryRun": "All"}, json=svc)
    assert r.status_code == 201, r.text
    assert api.get(f"/api/v1/namespaces/{namespace}/services/dry-svc").status_code == 404


def test_binding_sets_node_once(api: httpx.Client, namespace: str, build: Any) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    made = api.post(pods, json=build.pod("tobind"), params={"fieldManager": "creator"}).json()
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "tobind"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"},
    }
    r = api.post(f"{pods}/tobind/binding", json=binding)
    assert r.status_code == 201, r.text
    pod = api.get(f"{pods}/tobind").json()
    assert pod["spec"]["nodeName"] == "node-a"
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"
    # As kube-apiserver's BindingREST: the binding is no manager's update of the pod.
    assert pod["metadata"]["managedFields"] == made["metadata"]["managedFields"]
    binding["target"]["name"] = "node-b"
    again = api.post(f"{pods}/tobind/binding", json=binding)
    assert again.status_code == 409
    assert api.get(f"{pods}/tobind").json()["spec"]["nodeName"] == "node-a"


def test_namespace_lifecycle(api: httpx.Client, namespace: str, build: Any) -> None:
    missing = api.post("/api/v1/namespaces/no-such-ns/pods", json=build.pod("x"))
    assert missing.status_code == 404
    assert missing.json()["message"] == 'namespaces "no-such-ns" not found'

    doomed = f"{namespace}-doomed"[:63]
    api.post("/api/v1/namespaces", json={"metadata": {"name": doomed}})
    api.delete(f"/api/v1/namespaces/{doomed}")
    ns = api.get(f"/api/v1/namespaces/{doomed}").json()
    assert ns["status"]["phase"] == "Terminating"
    refused = api.post(f"/api/v1/namespaces/{doomed}/pods", json=build.pod("x"))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "Forbidden"
    assert "because it is being terminated" in refused.json()["message"]

    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert api.get(f"/api/v1/namespaces/{name}").status_code == 200
    assert api.delete("/api/v1/namespaces/default").status_code == 403


def test_kubernetes_service_exists(api: httpx.Client) -> None:
    ep = api.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
    assert ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"
    svc = api.get("/api/v1/namespaces/default/services/kubernetes").json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443


def test_services_get_cluster_ips_and_node_ports(api: httpx.Client, namespace: str) -> None:
    svcs = f"/api/v1/namespaces/{namespace}/services"
    a = api.post(svcs, json={"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}).json()
    b = api.post(
        svcs,
        json={"metadata": {"name": "b"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
    ).json()
    assert a["spec"]["clusterIP"] != b["spec"]["clusterIP"]
    assert a["spec"]["clusterIP"].startswith("10.")
    assert 30000 <= b["spec"]["ports"][0]["nodePort"] <= 32767
    taken = api.post(
        svcs,
        json={
            "metadata": {"name": "c"},
            "spec": {"clusterIP": a["spec"]["clusterIP"], "ports": [{"port": 80}]},
        },
    )
    assert taken.status_code == 422
    assert "already allocated" in taken.json()["message"]
