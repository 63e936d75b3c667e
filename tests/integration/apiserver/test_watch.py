"""Watch as clients use it: initial state, resume by resourceVersion, bookmarks, 410."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx


def read_events(api: httpx.Client, url: str, params: dict[str, Any], count: int) -> list[dict]:
    events: list[dict] = []
    with api.stream("GET", url, params={"watch": "1", **params}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


def test_watch_sends_current_state_then_changes(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(cms, json={"metadata": {"name": "before"}})
    listed = api.get(cms).json()["metadata"]["resourceVersion"]

    with api.stream("GET", cms, params={"watch": "true", "timeoutSeconds": 10}) as r:
        lines = r.iter_lines()
        first = json.loads(next(lines))
        assert first["type"] == "ADDED"
        assert first["object"]["metadata"]["name"] == "before"
        api.post(cms, json={"metadata": {"name": "after"}})
        api.patch(
            f"{cms}/after",
            json={"data": {"x": "1"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        api.delete(f"{cms}/after")
        seen = [json.loads(next(lines)) for _ in range(3)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen] == [
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "after"),
    ]
    revisions = [int(e["object"]["metadata"]["resourceVersion"]) for e in seen]
    assert revisions == sorted(revisions) and revisions[0] > int(listed)
    assert seen[1]["object"]["data"] == {"x": "1"}


def test_watch_from_resource_version_skips_older(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(cms, json={"metadata": {"name": "old"}})
    rv = api.get(cms).json()["metadata"]["resourceVersion"]
    api.post(cms, json={"metadata": {"name": "new"}})
    events = read_events(api, cms, {"resourceVersion": rv, "timeoutSeconds": 5}, 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "new")]


def test_watch_with_label_selector_sees_transitions(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    merge = {"Content-Type": "application/merge-patch+json"}
    api.post(cms, json={"metadata": {"name": "m", "labels": {"watched": "no"}}})
    rv = api.get(cms).json()["metadata"]["resourceVersion"]
    api.patch(f"{cms}/m", json={"metadata": {"labels": {"watched": "yes"}}}, headers=merge)
    api.patch(f"{cms}/m", json={"data": {"a": "1"}}, headers=merge)
    api.patch(f"{cms}/m", json={"metadata": {"labels": {"watched": "no"}}}, headers=merge)
    params = {"resourceVersion": rv, "labelSelector": "watched=yes", "timeoutSeconds": 5}
    events = read_events(api, cms, params, 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_one_object_by_name(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(cms, json={"metadata": {"name": "one"}})
    api.post(cms, json={"metadata": {"name": "two"}})
    events = read_events(
        api, f"/api/v1/watch/namespaces/{namespace}/configmaps/two", {"timeoutSeconds": 3}, 5
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["two"]


def test_timeout_ends_watch_with_bookmark(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    made = api.post(cms, json={"metadata": {"name": "bm"}}).json()
    rv = made["metadata"]["resourceVersion"]
    started = time.monotonic()
    params = {"resourceVersion": rv, "timeoutSeconds": 2, "allowWatchBookmarks": "true"}
    events = read_events(api, cms, params, 100)
    assert time.monotonic() - started >= 1.5  # it ran until the timeout, then ended
    assert events, "a bookmark was expected before the watch ended"
    bookmark = events[-1]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "ConfigMap"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(rv)
    # Resuming from the bookmark sees the next change, and nothing before it.
    api.post(cms, json={"metadata": {"name": "bm2"}})
    params = {
        "resourceVersion": bookmark["object"]["metadata"]["resourceVersion"],
        "timeoutSeconds": 5,
    }
    resumed = read_events(api, cms, params, 1)
    assert resumed[0]["object"]["metadata"]["name"] == "bm2"


def test_send_initial_events_ends_with_marked_bookmark(api: httpx.Client, namespace: str) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("i1", "i2"):
        api.post(cms, json={"metadata": {"name": name}})
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": 5,
    }
    events = read_events(api, cms, params, 3)
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    annotations = events[2]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


async def test_resume_through_1000_writes_sees_each_once_in_order(
    apiserver: Any, namespace: str
) -> None:
    """A watcher that hangs up every ~150 events and resumes from its last
    resourceVersion sees all 1,000 writes exactly once, in order."""
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    written: list[int] = []
    seen: list[int] = []
    async with apiserver.async_client() as client:
        start_rv = (await client.get(url)).json()["metadata"]["resourceVersion"]

        async def writer() -> None:
            async def one(i: int) -> None:
                r = await client.post(url, json={"metadata": {"name": f"w-{i:04d}"}})
                assert r.status_code == 201, r.text
                written.append(int(r.json()["metadata"]["resourceVersion"]))

            for batch in range(0, 1000, 10):
                await asyncio.gather(*(one(i) for i in range(batch, batch + 10)))

        async def watcher() -> None:
            rv = start_rv
            reconnects = 0
            while len(seen) < 1000:
                params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": 60}
                async with client.stream("GET", url, params=params) as r:
                    assert r.status_code == 200
                    in_this = 0
                    async for line in r.aiter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        assert event["type"] == "ADDED", event
                        rv = event["object"]["metadata"]["resourceVersion"]
                        seen.append(int(rv))
                        in_this += 1
                        if in_this >= 150 or len(seen) >= 1000:
                            break  # hang up; resume from rv
                reconnects += 1
            assert reconnects >= 6

        await asyncio.wait_for(asyncio.gather(writer(), watcher()), timeout=240)
    assert len(seen) == 1000
    assert seen == sorted(written)


def test_compacted_resource_version_answers_410(start_apiserver: Any) -> None:
    """After etcd compacts past a resourceVersion, a watch from it gets an
    ERROR event carrying 410 Gone, and the client must relist."""
    server = start_apiserver("--etcd-compaction-interval", "1")
    with server.client() as api:
        cms = "/api/v1/namespaces/default/configmaps"
        old_rv = api.post(cms, json={"metadata": {"name": "c1"}}).json()["metadata"][
            "resourceVersion"
        ]
        deadline = time.monotonic() + 30
        while True:
            api.post(cms, json={"metadata": {"generateName": "c-"}})  # history moves on
            events = read_events(api, cms, {"resourceVersion": old_rv, "timeoutSeconds": 1}, 1)
            if events and events[0]["type"] == "ERROR":
                break
            assert time.monotonic() < deadline, f"no 410 after compaction: {events[:1]}"
            time.sleep(0.1)
        status = events[0]["object"]
        assert status["kind"] == "Status"
        assert status["code"] == 410
        assert status["reason"] in ("Expired", "Gone")
        # A relist gives a fresh resourceVersion that can be watched from again.
        fresh = api.get(cms).json()["metadata"]["resourceVersion"]
        api.post(cms, json={"metadata": {"name": "c2"}})
        events = read_events(api, cms, {"resourceVersion": fresh, "timeoutSeconds": 5}, 1)
        assert events[0]["type"] == "ADDED"
