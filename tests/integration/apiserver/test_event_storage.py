"""Events in etcd as kube-apiserver keeps them: on shared leases that expire, and
in no watch cache.

What a user checks: an Event goes away on its own --event-ttl after its last
write (kube-apiserver's default is an hour), while many Events cost etcd one
lease, not one each (kube-apiserver's lease manager); and Events stay readable,
listable and watchable right after they are written although no apiserver
worker keeps them in a watch cache (kube-apiserver keeps none for Events).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from aetcd import rpc

from api import resources
from apiserver.admission import ServiceAllocation
from apiserver.registry import Registry, WriteOptions
from apiserver.storage import LEASE_REUSE_MAX_SECONDS, Store
from apiserver.watch import WatchHubs

EVENTS = resources.lookup("", "v1", "events")


def event(name: str, pod: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": pod, "apiVersion": "v1"},
        "reason": "Scheduled",
        "message": f"Successfully assigned {pod}",
        "type": "Normal",
        "source": {"component": "default-scheduler"},
    }


def eventually(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _key_lease(store: Store, key: str) -> int | None:
    """The lease `key` is attached to in etcd (0: none), or None when the key is gone."""
    assert store.client is not None
    resp = await store.client.kvstub.Range(rpc.RangeRequest(key=key.encode()), timeout=5)
    return int(resp.kvs[0].lease) if resp.kvs else None


async def _lease_ttl(store: Store, lease: int) -> int:
    assert store.client is not None
    resp = await store.client.leasestub.LeaseTimeToLive(
        rpc.LeaseTimeToLiveRequest(ID=lease), timeout=5
    )
    return int(resp.grantedTTL)


def test_events_share_one_lease_and_expire_after_their_ttl(apiserver: Any, namespace: str) -> None:
    """Registries of the test's own on the session apiserver's etcd: with --event-ttl
    60s, three Events and a repeat's update ride one lease of 63 s (the TTL and 5%
    reuse window); with --event-ttl 2s (too short to reuse a lease), Events expire."""

    async def scenario() -> None:
        store = Store([apiserver.etcd_url], tls=apiserver.etcd_tls())
        await store.connect(retry_for=10)
        hubs = WatchHubs(store)
        services = ServiceAllocation(None, None)  # type: ignore[arg-type]
        assert EVENTS is not None
        ns = namespace
        suffix = uuid.uuid4().hex[:8]
        try:
            registry = Registry(store, hubs, services, event_ttl=60)
            names = [f"ttl-{suffix}-{i}" for i in range(3)]
            for name in names:
                await registry.create(EVENTS, ns, event(name), WriteOptions())

            def bump(obj: dict[str, Any]) -> dict[str, Any]:
                obj["count"] = 2
                return obj

            await registry.update(EVENTS, ns, names[0], bump, WriteOptions())
            keys = [f"/registry/events/{ns}/{name}" for name in names]
            leases = {await _key_lease(store, key) for key in keys}
            assert len(leases) == 1 and 0 not in leases and None not in leases
            assert store.leases.granted == 1  # one LeaseGrant for all four writes
            (lease,) = leases
            assert await _lease_ttl(store, int(lease or 0)) == 63

            short = Registry(store, hubs, services, event_ttl=2)
            brief = [f"brief-{suffix}-{i}" for i in range(2)]
            for name in brief:
                await short.create(EVENTS, ns, event(name), WriteOptions())
            brief_keys = [f"/registry/events/{ns}/{name}" for name in brief]
            assert all([await _key_lease(store, key) for key in brief_keys])
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if all([await _key_lease(store, key) is None for key in brief_keys]):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the Events did not expire")
            assert await _key_lease(store, keys[1]) not in (0, None)  # 60 s: still there
            for key in keys:  # not left behind for a minute
                await store.delete(key, (await store.mod_revision(key))[0])
        finally:
            await hubs.stop()
            await store.close()

    asyncio.run(scenario())


def test_an_event_made_through_the_api_lives_an_hour_on_a_shared_lease(
    api: httpx.Client, namespace: str, apiserver: Any
) -> None:
    """The default --event-ttl: an hour (plus the lease manager's reuse window)."""
    url = f"/api/v1/namespaces/{namespace}/events"
    suffix = uuid.uuid4().hex[:8]
    for i in range(2):
        made = api.post(url, json=event(f"api-{suffix}-{i}"))
        assert made.status_code == 201, made.text

    async def leases() -> tuple[set[int | None], set[int]]:
        store = Store([apiserver.etcd_url], tls=apiserver.etcd_tls())
        await store.connect(retry_for=10)
        try:
            found = {
                await _key_lease(store, f"/registry/events/{namespace}/api-{suffix}-{i}")
                for i in range(2)
            }
            ttls = {await _lease_ttl(store, int(lease)) for lease in found if lease}
            return found, ttls
        finally:
            await store.close()

    found, ttls = asyncio.run(leases())
    assert None not in found and 0 not in found
    # Two workers may each have granted one; never one per Event beyond that.
    assert all(3600 <= ttl <= 3600 + LEASE_REUSE_MAX_SECONDS for ttl in ttls), ttls


def test_events_are_read_listed_and_watched_at_once_without_a_watch_cache(
    api: httpx.Client, namespace: str
) -> None:
    url = f"/api/v1/namespaces/{namespace}/events"
    listed = api.get(url)
    assert listed.status_code == 200, listed.text
    rv = listed.json()["metadata"]["resourceVersion"]
    with api.stream(
        "GET", url, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "20"}
    ) as watch:
        for i in range(3):
            made = api.post(url, json=event(f"w{i}", pod=f"p{i}"))
            assert made.status_code == 201, made.text
            got = api.get(f"{url}/w{i}")  # through whichever worker: read from etcd
            assert got.status_code == 200, got.text
            assert (
                got.json()["metadata"]["resourceVersion"]
                == made.json()["metadata"]["resourceVersion"]
            )
            names = [e["metadata"]["name"] for e in api.get(url).json()["items"]]
            assert f"w{i}" in names
        seen: list[tuple[str, str]] = []
        for line in watch.iter_lines():
            if not line:
                continue
            change = json.loads(line)
            seen.append((change["type"], change["object"]["metadata"]["name"]))
            if len(seen) == 3:
                break
    assert seen == [("ADDED", "w0"), ("ADDED", "w1"), ("ADDED", "w2")]
    fields = api.get(url, params={"fieldSelector": "involvedObject.name=p1"}).json()
    assert [e["metadata"]["name"] for e in fields["items"]] == ["w1"]
