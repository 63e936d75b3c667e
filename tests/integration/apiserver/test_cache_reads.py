"""Reads served from the watch cache, as kube-apiserver serves them.

GET and LIST with `resourceVersion=0` come from the cache as it is; consistent
reads (no resourceVersion) come from it only once it holds etcd's current
state. What a user checks: a read right after a write sees it, lists page and
filter as before, a list's resourceVersion is one a watch can start from, and a
cache that has stopped following etcd is never served as if it were current.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api import resources
from apiserver.admission import ServiceAllocation
from apiserver.registry import ListOptions, Registry
from apiserver.storage import Store
from apiserver.watch import WatchHubs


def configmap(name: str, labels: dict[str, str] | None = None, data: str = "v") -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": data}}


def eventually(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_read_right_after_a_write_sees_it(api: httpx.Client, namespace: str) -> None:
    """Read-your-writes: every get and list right after a create, update or delete."""
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(15):
        created = api.post(url, json=configmap(f"c{i}"))
        assert created.status_code == 201, created.text
        rv = created.json()["metadata"]["resourceVersion"]
        got = api.get(f"{url}/c{i}")
        assert got.status_code == 200, got.text
        assert got.json()["metadata"]["resourceVersion"] == rv
        listed = api.get(url).json()
        assert f"c{i}" in [item["metadata"]["name"] for item in listed["items"]]
        assert int(listed["metadata"]["resourceVersion"]) >= int(rv)

        body = got.json()
        body["data"] = {"k": f"changed-{i}"}
        updated = api.put(f"{url}/c{i}", json=body)
        assert updated.status_code == 200, updated.text
        again = api.get(f"{url}/c{i}").json()
        assert again["data"] == {"k": f"changed-{i}"}
        assert again["metadata"]["resourceVersion"] == updated.json()["metadata"]["resourceVersion"]

        assert api.delete(f"{url}/c{i}").status_code == 200
        assert api.get(f"{url}/c{i}").status_code == 404
        names = [item["metadata"]["name"] for item in api.get(url).json()["items"]]
        assert f"c{i}" not in names


def test_resource_version_zero_reads_the_cache(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = api.post(url, json=configmap("zero")).json()["metadata"]["resourceVersion"]

    def listed() -> dict | None:
        body = api.get(url, params={"resourceVersion": "0"}).json()
        return body if [i["metadata"]["name"] for i in body["items"]] == ["zero"] else None

    body = eventually(listed, what="the rv=0 list to show the object")
    assert body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert "kind" not in body["items"][0] and "apiVersion" not in body["items"][0]
    assert int(body["metadata"]["resourceVersion"]) >= int(rv)
    got = api.get(f"{url}/zero", params={"resourceVersion": "0"})
    assert got.status_code == 200
    assert got.json()["kind"] == "ConfigMap" and got.json()["data"] == {"k": "v"}
    missing = api.get(f"{url}/absent", params={"resourceVersion": "0"})
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    # NotOlderThan a version the cache has: served too, and never older than asked.
    newer = api.get(url, params={"resourceVersion": rv, "resourceVersionMatch": "NotOlderThan"})
    assert newer.status_code == 200
    assert int(newer.json()["metadata"]["resourceVersion"]) >= int(rv)
    # The listed objects are untouched by the list (items carry no kind; the object does).
    assert api.get(f"{url}/zero", params={"resourceVersion": "0"}).json()["kind"] == "ConfigMap"


def test_a_list_resource_version_starts_a_watch_that_misses_nothing(
    api: httpx.Client, namespace: str
) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(url, json=configmap("before"))
    rv = api.get(url).json()["metadata"]["resourceVersion"]
    api.post(url, json=configmap("after"))
    params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "10"}
    with api.stream("GET", url, params=params) as r:
        for line in r.iter_lines():
            if line:
                event = json.loads(line)
                assert event["type"] == "ADDED"
                assert event["object"]["metadata"]["name"] == "after"
                break


@pytest.mark.parametrize("version", ["", "0"])
def test_paging_from_the_cache(api: httpx.Client, namespace: str, version: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    names = [f"p{i}" for i in range(7)]
    for name in names:
        assert api.post(url, json=configmap(name)).status_code == 201
    if version == "0":
        eventually(
            lambda: len(api.get(url, params={"resourceVersion": "0"}).json()["items"]) == 7,
            what="the cache to hold all seven",
        )
    params: dict[str, Any] = {"limit": 3, "resourceVersion": version}
    first = api.get(url, params=params).json()
    assert [i["metadata"]["name"] for i in first["items"]] == names[:3]
    assert first["metadata"]["remainingItemCount"] == 4
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = api.get(url, params={"limit": 3, "continue": token})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        seen += [i["metadata"]["name"] for i in body["items"]]
        token = body["metadata"].get("continue", "")
    assert seen == names


def test_selectors_on_cached_reads(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(6):
        labels = {"tier": "web" if i % 2 else "db"}
        assert api.post(url, json=configmap(f"s{i}", labels)).status_code == 201
    for version in ("", "0"):

        def names(version: str = version, **params: str) -> list[str]:
            body = api.get(url, params={"resourceVersion": version, **params}).json()
            return [i["metadata"]["name"] for i in body["items"]]

        eventually(lambda: len(names()) == 6, what="all six listed")
        assert names(labelSelector="tier=web") == ["s1", "s3", "s5"]
        assert names(labelSelector="tier!=web") == ["s0", "s2", "s4"]
        assert names(fieldSelector="metadata.name=s2") == ["s2"]
        assert names(labelSelector="tier=db", fieldSelector="metadata.name!=s0") == ["s2", "s4"]
        # A selector with a limit: pages filled as before, no remainingItemCount.
        body = api.get(
            url, params={"resourceVersion": version, "labelSelector": "tier=web", "limit": 2}
        ).json()
        assert [i["metadata"]["name"] for i in body["items"]] == ["s1", "s3"]
        assert "remainingItemCount" not in body["metadata"]
        token = body["metadata"]["continue"]
        rest = api.get(url, params={"continue": token, "limit": 2, "labelSelector": "tier=web"})
        assert [i["metadata"]["name"] for i in rest.json()["items"]] == ["s5"]
    # Across namespaces (the cluster-wide list) the selector still finds only this test's.
    mine = api.get("/api/v1/configmaps", params={"labelSelector": "tier=web"}).json()
    assert {i["metadata"]["namespace"] for i in mine["items"]} >= {namespace}


async def test_a_cache_that_lags_is_not_served_as_current(apiserver: Any) -> None:
    """A watch cache that stopped following etcd: resourceVersion=0 reads show its
    (old) state, while consistent reads notice it lags and read etcd instead."""
    store = Store([apiserver.etcd_url], tls=apiserver.etcd_tls())
    await store.connect(retry_for=10)
    hubs = WatchHubs(store)
    try:
        registry = Registry(store, hubs, ServiceAllocation(None, None))  # type: ignore[arg-type]
        info = resources.lookup("", "v1", "configmaps")
        assert info is not None
        ns = f"lag-{uuid.uuid4().hex[:8]}"
        key = f"/registry/configmaps/{ns}/"
        first = await store.create(key + "one", {"kind": "ConfigMap", **configmap("one")})
        hub = await hubs.hub("/registry/configmaps/")
        assert await hub.wait_for(first.revision, 10)
        assert hub.synced
        await hub.stop()  # the cache stops following etcd: it lags from here on

        await store.create(key + "two", {"kind": "ConfigMap", **configmap("two")})
        changed = await store.get(key + "one")
        assert changed is not None
        changed.obj["data"] = {"k": "new"}
        await store.update(key + "one", changed.obj, changed.revision)

        async def names(version: str) -> list[str]:
            opts = ListOptions(from_cache="any" if version == "0" else "fresh")
            items, *_ = await registry.list(info, ns, opts)
            return [i["metadata"]["name"] for i in items]

        assert await names("0") == ["one"]  # the cache, as it is
        assert await names("") == ["one", "two"]  # etcd, since the cache lags
        assert (await registry.read(info, ns, "one", "0")).obj["data"] == {"k": "v"}
        assert (await registry.read(info, ns, "one", "")).obj["data"] == {"k": "new"}
        assert (await registry.read(info, ns, "two", "")).obj["metadata"]["name"] == "two"
        for name in ("one", "two"):
            await store.delete(key + name, (await store.get(key + name)).revision)  # type: ignore[union-attr]
    finally:
        await hubs.stop()
        await store.close()
        await asyncio.sleep(0)


def test_a_create_right_after_its_namespace_is_deleted_is_refused(api: httpx.Client) -> None:
    """A create checks its namespace against the watch cache, guarded in the create's
    own etcd transaction: a namespace marked Terminating a moment ago (before the
    cache can have seen it) still refuses new content."""
    for i in range(5):
        ns = f"going-{uuid.uuid4().hex[:8]}-{i}"
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
        url = f"/api/v1/namespaces/{ns}/configmaps"
        assert api.post(url, json=configmap("first")).status_code == 201
        assert api.delete(f"/api/v1/namespaces/{ns}").status_code == 200
        refused = api.post(url, json=configmap("late"))
        assert refused.status_code == 403, refused.text
        assert refused.json()["details"]["causes"][0]["reason"] == "NamespaceTerminating"
        assert api.get(f"{url}/late").status_code == 404


@pytest.mark.parametrize("version", ["", "0"])
def test_a_namespaced_list_holds_its_namespace_only(api: httpx.Client, version: str) -> None:
    """One namespace's list from the cache: its objects, in order, and not those of a
    namespace whose name it starts (`x` and `x-b` sit side by side in the key order)."""
    first = f"list-{uuid.uuid4().hex[:6]}"
    spaces = [first, f"{first}-b"]
    for ns in spaces:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
    try:
        for i in range(12):
            for ns in spaces:
                url = f"/api/v1/namespaces/{ns}/configmaps"
                assert api.post(url, json=configmap(f"c{i:02d}")).status_code == 201
        for i in range(0, 12, 3):  # gone from the first namespace only
            assert api.delete(f"/api/v1/namespaces/{first}/configmaps/c{i:02d}").status_code == 200
        params = {"resourceVersion": version} if version else {}

        def names(ns: str) -> list[str]:
            listed = api.get(f"/api/v1/namespaces/{ns}/configmaps", params=params).json()
            return [item["metadata"]["name"] for item in listed["items"]]

        kept = [f"c{i:02d}" for i in range(12) if i % 3]
        if version:  # any state will do: wait for the cache to have seen the deletes
            eventually(lambda: names(first) == kept, what="the cache to see the deletes")
        assert names(first) == kept
        assert names(spaces[1]) == [f"c{i:02d}" for i in range(12)]
    finally:
        for ns in spaces:
            api.delete(f"/api/v1/namespaces/{ns}")


def test_field_selectors_on_cached_reads(api: httpx.Client, namespace: str, build: Any) -> None:
    """A kind's own selectable fields (a pod's node, its phase) filter lists served
    from the cache as they filter lists from etcd, and follow the object's changes."""
    url = f"/api/v1/namespaces/{namespace}/pods"
    for name, node in [("on-a", "node-a"), ("on-b", "node-b"), ("nowhere", "")]:
        made = api.post(url, json=build.pod(name, {"app": name}, node=node))
        assert made.status_code == 201, made.text

    def names(version: str, path: str = url, **params: str) -> list[str]:
        r = api.get(path, params={"resourceVersion": version, **params})
        assert r.status_code == 200, r.text
        return [i["metadata"]["name"] for i in r.json()["items"]]

    for version in ("", "0"):
        eventually(lambda v=version: len(names(v)) == 3, what="all three pods listed")
        assert names(version, fieldSelector="spec.nodeName=node-a") == ["on-a"]
        assert names(version, fieldSelector="spec.nodeName=") == ["nowhere"]
        assert names(version, fieldSelector="status.phase=Pending") == ["nowhere", "on-a", "on-b"]
        assert names(version, fieldSelector="spec.nodeName!=node-a", labelSelector="app=on-b") == [
            "on-b"
        ]
        both = f"metadata.namespace={namespace},spec.nodeName=node-b"
        assert names(version, "/api/v1/pods", fieldSelector=both) == ["on-b"]
    # A binding moves the pod: the next consistent read and GET show it where it went.
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "nowhere"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-c"},
    }
    assert api.post(f"{url}/nowhere/binding", json=binding).status_code == 201
    assert names("", fieldSelector="spec.nodeName=node-c") == ["nowhere"]
    assert names("", fieldSelector="spec.nodeName=") == []
    got = api.get(f"{url}/nowhere").json()
    assert got["spec"]["nodeName"] == "node-c"
    assert got["kind"] == "Pod" and got["apiVersion"] == "v1"


def test_a_watch_with_a_selector_sees_an_object_leave_and_return(
    api: httpx.Client, namespace: str
) -> None:
    """Live changes through a label selector: an object that stops matching is
    DELETED for the watcher, as it last matched, at the change's resourceVersion
    (as kube-apiserver sends it); one that starts matching is ADDED."""
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    merge = {"Content-Type": "application/merge-patch+json"}
    rv = api.get(url).json()["metadata"]["resourceVersion"]
    params = {"watch": "1", "resourceVersion": rv, "labelSelector": "watched=yes",
              "timeoutSeconds": "20"}  # fmt: skip
    with api.stream("GET", url, params=params) as r:
        assert r.status_code == 200
        events = (json.loads(line) for line in r.iter_lines() if line)
        assert api.post(url, json=configmap("w", {"watched": "yes"})).status_code == 201
        first = next(events)
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "w")
        # The watch is being served as changes happen from here on.
        assert api.post(url, json=configmap("other", {"watched": "no"})).status_code == 201
        api.patch(f"{url}/w", json={"data": {"k": "2"}}, headers=merge)
        modified = next(events)
        assert modified["type"] == "MODIFIED" and modified["object"]["data"] == {"k": "2"}
        left = api.patch(
            f"{url}/w", json={"metadata": {"labels": {"watched": "no"}}}, headers=merge
        )
        assert left.status_code == 200
        gone = next(events)
        assert (gone["type"], gone["object"]["metadata"]["name"]) == ("DELETED", "w")
        assert gone["object"]["metadata"]["labels"] == {"watched": "yes"}
        assert gone["object"]["data"] == {"k": "2"}
        assert (
            gone["object"]["metadata"]["resourceVersion"]
            == left.json()["metadata"]["resourceVersion"]
        )
        api.patch(f"{url}/other", json={"data": {"k": "x"}}, headers=merge)  # never matches
        back = api.patch(f"{url}/w", json={"metadata": {"labels": {"watched": "yes"}}},
                         headers=merge)  # fmt: skip
        returned = next(events)
        assert (returned["type"], returned["object"]["metadata"]["labels"]) == (
            "ADDED",
            {"watched": "yes"},
        )
        assert (
            returned["object"]["metadata"]["resourceVersion"]
            == back.json()["metadata"]["resourceVersion"]
        )
        assert api.delete(f"{url}/w").status_code == 200
        deleted = next(events)
        assert (deleted["type"], deleted["object"]["metadata"]["name"]) == ("DELETED", "w")
