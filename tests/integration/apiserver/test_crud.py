"""Create, read, update, delete, list, selectors and pagination for every resource."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import httpx


def _prepare(sample: tuple, namespace: str) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """The collection URL, the object's name and body, for this test's namespace."""
    prefix, plural, namespaced, obj, change = sample
    obj = json.loads(json.dumps(obj).replace('"NS"', f'"{namespace}"'))
    if not namespaced:
        obj["metadata"]["name"] = f"{namespace}-{plural}"[:63]
    collection = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
    return collection, obj["metadata"]["name"], obj, change


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def test_create_get_update_delete(api: httpx.Client, namespace: str, sample: tuple) -> None:
    collection, name, obj, change = _prepare(sample, namespace)
    created = api.post(collection, json=obj)
    assert created.status_code == 201, created.text
    meta = created.json()["metadata"]
    assert meta["name"] == name
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"]

    got = api.get(f"{collection}/{name}")
    assert got.status_code == 200
    assert got.json()["metadata"]["uid"] == meta["uid"]
    assert got.json()["kind"] == obj["kind"]

    updated_body = _merge(got.json(), change)
    updated = api.put(f"{collection}/{name}", json=updated_body)
    assert updated.status_code == 200, updated.text
    assert int(updated.json()["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    for key, value in change.items():
        if key != "metadata":
            for k, v in value.items() if isinstance(value, dict) else [(None, value)]:
                assert (updated.json()[key][k] if k else updated.json()[key]) == v

    listed = api.get(collection)
    assert listed.status_code == 200
    assert name in [i["metadata"]["name"] for i in listed.json()["items"]]
    assert listed.json()["kind"] == obj["kind"] + "List"

    deleted = api.delete(f"{collection}/{name}")
    assert deleted.status_code == 200, deleted.text
    after = api.get(f"{collection}/{name}")
    if obj["kind"] == "Namespace":
        assert after.json()["status"]["phase"] == "Terminating"
    else:
        assert after.status_code == 404, after.text
        assert after.json()["reason"] == "NotFound"


def test_duplicate_create_is_already_exists(api: httpx.Client, namespace: str) -> None:
    cm = {"metadata": {"name": "dup"}, "data": {"a": "1"}}
    assert api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=cm).status_code == 201
    again = api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=cm)
    assert again.status_code == 409
    assert again.json()["reason"] == "AlreadyExists"
    assert again.json()["message"] == 'configmaps "dup" already exists'


def test_generate_name(api: httpx.Client, namespace: str) -> None:
    body = {"metadata": {"generateName": "web-"}, "data": {}}
    names = {
        api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=body).json()["metadata"]["name"]
        for _ in range(5)
    }
    assert len(names) == 5
    assert all(n.startswith("web-") and len(n) == len("web-") + 5 for n in names)


def test_all_namespaces_list(api: httpx.Client, namespace: str, build: Any) -> None:
    other = f"{namespace}-b"[:63]
    api.post("/api/v1/namespaces", json={"metadata": {"name": other}})
    for ns in (namespace, other):
        r = api.post(f"/api/v1/namespaces/{ns}/pods", json=build.pod("same-name"))
        assert r.status_code == 201, r.text
    items = api.get("/api/v1/pods").json()["items"]
    found = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items}
    assert {(namespace, "same-name"), (other, "same-name")} <= found


def test_label_selectors(api: httpx.Client, namespace: str, build: Any) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for name, labels in [
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "back"}),
        ("c", {"app": "db"}),
        ("d", {}),
    ]:
        assert api.post(pods, json=build.pod(name, labels)).status_code == 201

    def names(selector: str) -> list[str]:
        r = api.get(pods, params={"labelSelector": selector})
        assert r.status_code == 200, r.text
        return sorted(i["metadata"]["name"] for i in r.json()["items"])

    assert names("app=web") == ["a", "b"]
    assert names("app==web,tier!=back") == ["a"]
    assert names("app in (web,db)") == ["a", "b", "c"]
    assert names("app notin (web)") == ["c", "d"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c", "d"]
    bad = api.get(pods, params={"labelSelector": "app in (web"})
    assert bad.status_code == 400
    assert bad.json()["kind"] == "Status"


def test_field_selectors(api: httpx.Client, namespace: str, build: Any) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    api.post(pods, json=build.pod("on-a", node="node-a"))
    api.post(pods, json=build.pod("on-b", node="node-b"))
    api.post(pods, json=build.pod("nowhere"))

    def names(selector: str, path: str = pods) -> list[str]:
        r = api.get(path, params={"fieldSelector": selector})
        assert r.status_code == 200, r.text
        return sorted(i["metadata"]["name"] for i in r.json()["items"])

    assert names("spec.nodeName=node-a") == ["on-a"]
    assert names("spec.nodeName=") == ["nowhere"]
    assert names("spec.nodeName!=node-a") == ["nowhere", "on-b"]
    assert names("metadata.name=on-b") == ["on-b"]
    assert names("status.phase=Pending") == ["nowhere", "on-a", "on-b"]
    assert names(f"metadata.namespace={namespace},spec.nodeName=node-b", "/api/v1/pods") == ["on-b"]
    unknown = api.get(pods, params={"fieldSelector": "spec.color=blue"})
    assert unknown.status_code == 400
    assert "spec.color" in unknown.json()["message"]


def test_event_field_selectors(api: httpx.Client, namespace: str) -> None:
    events = f"/api/v1/namespaces/{namespace}/events"
    for name, target in [("e1", "p1"), ("e2", "p2")]:
        body = {
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": target, "namespace": namespace},
            "reason": "Test",
            "message": "m",
            "type": "Normal",
        }
        assert api.post(events, json=body).status_code == 201
    r = api.get(events, params={"fieldSelector": "involvedObject.name=p2,involvedObject.kind=Pod"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["e2"]


def test_pagination_walks_every_item_once(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    made = {f"cm-{i:03d}" for i in range(23)}
    for name in made:
        assert api.post(cms, json={"metadata": {"name": name}}).status_code == 201
    seen: list[str] = []
    token = ""
    pages = 0
    first_rv = ""
    while True:
        params: dict[str, Any] = {"limit": 5}
        if token:
            params["continue"] = token
        page = api.get(cms, params=params).json()
        pages += 1
        first_rv = first_rv or page["metadata"]["resourceVersion"]
        # Every page is read at the first page's revision: a consistent snapshot.
        assert page["metadata"]["resourceVersion"] == first_rv
        if pages == 1:
            assert page["metadata"]["remainingItemCount"] == 18
            # A write between pages is not visible in later pages.
            api.post(cms, json={"metadata": {"name": "cm-zzz-late"}})
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert pages == 5
    assert sorted(seen) == sorted(made)


def test_pagination_with_selector(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(12):
        labels = {"even": "yes"} if i % 2 == 0 else {}
        api.post(cms, json={"metadata": {"name": f"cm-{i:02d}", "labels": labels}})
    seen, token = [], ""
    while True:
        params: dict[str, Any] = {"limit": 4, "labelSelector": "even=yes"}
        if token:
            params["continue"] = token
        page = api.get(cms, params=params).json()
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert seen == [f"cm-{i:02d}" for i in range(0, 12, 2)]


def test_deletecollection(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    for name, labels in [("x1", {"drop": "yes"}), ("x2", {"drop": "yes"}), ("keep", {})]:
        api.post(cms, json={"metadata": {"name": name, "labels": labels}})
    r = api.request("DELETE", cms, params={"labelSelector": "drop=yes"})
    assert r.status_code == 200, r.text
    assert sorted(i["metadata"]["name"] for i in r.json()["items"]) == ["x1", "x2"]
    left = [i["metadata"]["name"] for i in api.get(cms).json()["items"]]
    assert left == ["keep"]


def test_stored_in_etcd_under_registry_key(
    apiserver: Any, api: httpx.Client, namespace: str
) -> None:
    """The object is really in etcd, at Kubernetes' key, as JSON."""
    import asyncio

    marker = str(uuid.uuid4())
    api.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        json={"metadata": {"name": "in-etcd"}, "data": {"marker": marker}},
    )

    async def read() -> bytes | None:
        async with apiserver.etcd_client() as etcd:
            got = await etcd.get(f"/registry/configmaps/{namespace}/in-etcd".encode())
            return got.value if got is not None else None

    value = asyncio.run(read())
    assert value is not None
    stored = json.loads(value)
    assert stored["data"]["marker"] == marker
    assert stored["metadata"]["namespace"] == namespace


def test_events_are_served_in_both_shapes(api: httpx.Client, namespace: str) -> None:
    """One stored Event, seen as core/v1 and as events.k8s.io/v1, as Kubernetes serves it."""
    new = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "both"},
        "regarding": {"kind": "Pod", "name": "p1", "namespace": namespace},
        "reason": "Pulled",
        "note": "image pulled",
        "type": "Normal",
        "action": "Pull",
        "reportingController": "skiff.io/kubelet",
        "reportingInstance": "node-a",
        "eventTime": "2026-11-24T10:00:00.000000Z",
    }
    r = api.post(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", json=new)
    assert r.status_code == 201, r.text
    assert r.json()["note"] == "image pulled"
    core = api.get(f"/api/v1/namespaces/{namespace}/events/both").json()
    assert core["message"] == "image pulled"
    assert core["involvedObject"]["name"] == "p1"
    assert core["reportingComponent"] == "skiff.io/kubelet"
    listed = api.get(
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
        params={"fieldSelector": "regarding.name=p1"},
    ).json()
    assert [e["note"] for e in listed["items"]] == ["image pulled"]
