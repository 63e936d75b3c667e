"""Updates, bindings and deletes that start from the watch cache's copy.

As kube-apiserver's Cacher.GuaranteedUpdate, a write computes from the object
the watch cache holds and writes it with a CAS on its mod_revision: one etcd
request while the cache is current. What a user checks: nothing is lost or
refused because a cache was behind etcd. These tests drive a Registry of
their own on the session apiserver's etcd, so they can count its etcd
requests and stop its cache (which then lags etcd by every later write).
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api import resources
from api.resources import ResourceInfo
from apiserver import errors, subresources
from apiserver.admission import ServiceAllocation
from apiserver.registry import DeleteOptions, Registry, WriteOptions, now_rfc3339
from apiserver.storage import Store
from apiserver.watch import WatchHubs


@dataclass
class Setup:
    store: Store
    hubs: WatchHubs
    registry: Registry
    calls: Counter[str]


def _info(group: str, plural: str) -> ResourceInfo:
    info = resources.lookup(group, "v1", plural)
    assert info is not None
    return info


CONFIGMAPS = _info("", "configmaps")
PODS = _info("", "pods")


@pytest.fixture
async def setup(apiserver: Any) -> AsyncIterator[Setup]:
    """A Registry with its own watch caches on the apiserver's etcd; its etcd
    requests are counted by method."""
    store = Store([apiserver.etcd_url], tls=apiserver.etcd_tls())
    await store.connect(retry_for=10)
    calls: Counter[str] = Counter()
    for method in ("get", "mod_revision", "update", "delete", "create", "list", "revision"):
        original = getattr(store, method)

        def counted(*args: Any, _m: str = method, _f: Any = original, **kw: Any) -> Any:
            calls[_m] += 1
            return _f(*args, **kw)

        setattr(store, method, counted)
    hubs = WatchHubs(store)
    try:
        for prefix in ("/registry/configmaps/", "/registry/pods/"):
            await hubs.hub(prefix)
        registry = Registry(store, hubs, ServiceAllocation(None, None))  # type: ignore[arg-type]
        yield Setup(store, hubs, registry, calls)
    finally:
        await hubs.stop()
        await store.close()
        await asyncio.sleep(0)


async def _cached(setup: Setup, info: ResourceInfo, ns: str, name: str, revision: int) -> None:
    """Wait until the test's cache holds `name` at `revision` (or later)."""
    hub = setup.hubs.hubs[f"/registry/{info.plural}/"]
    assert await hub.wait_for(revision, 10)
    stored = hub.objects.get(f"/registry/{info.plural}/{ns}/{name}")
    assert stored is not None and stored.revision >= revision


async def _stop_cache(setup: Setup, info: ResourceInfo) -> None:
    """The cache stops following etcd: it lags from here on, by every write."""
    await setup.hubs.hubs[f"/registry/{info.plural}/"].stop()


def _set(**data: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def compute(current: dict[str, Any]) -> dict[str, Any]:
        current.setdefault("data", {}).update(data)
        return current

    return compute


def _body(body: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda _current: copy.deepcopy(body)


async def _configmap(setup: Setup, ns: str, name: str) -> dict[str, Any]:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}
    created = await setup.registry.create(CONFIGMAPS, ns, obj, WriteOptions())
    await _cached(setup, CONFIGMAPS, ns, name, int(created["metadata"]["resourceVersion"]))
    return created


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def _bind(node: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    binding = {"metadata": {"name": "x"}, "target": {"kind": "Node", "name": node}}
    return lambda pod: subresources.bind(pod, binding, now_rfc3339())


async def test_while_the_cache_is_current_a_write_is_one_etcd_request(
    setup: Setup, namespace: str
) -> None:
    reg = setup.registry
    await _configmap(setup, namespace, "one")
    pod = await reg.create(PODS, namespace, _pod("p"), WriteOptions())
    await _cached(setup, PODS, namespace, "p", int(pod["metadata"]["resourceVersion"]))

    setup.calls.clear()
    updated = await reg.update(CONFIGMAPS, namespace, "one", _set(k="patched"), WriteOptions())
    assert updated["data"] == {"k": "patched"}
    assert setup.calls == Counter(update=1)

    setup.calls.clear()
    bound = await reg.update(
        PODS, namespace, "p", _bind("node-1"), WriteOptions(), subresource="binding"
    )
    assert bound["spec"]["nodeName"] == "node-1"
    assert setup.calls == Counter(update=1)

    await _cached(setup, CONFIGMAPS, namespace, "one", int(updated["metadata"]["resourceVersion"]))
    setup.calls.clear()
    _, gone = await reg.delete(CONFIGMAPS, namespace, "one", DeleteOptions())
    assert gone
    assert setup.calls == Counter(delete=1)
    assert await setup.store.get(f"/registry/configmaps/{namespace}/one") is None


async def test_a_cache_behind_etcd_loses_no_update_and_refuses_nothing_wrongly(
    setup: Setup, namespace: str
) -> None:
    reg = setup.registry
    created: dict[str, dict[str, Any]] = {}
    for name in ("patched", "put-fresh", "put-stale", "same", "gone", "pre-rv", "pre-uid"):
        created[name] = await _configmap(setup, namespace, name)
    await _stop_cache(setup, CONFIGMAPS)

    # Written behind the cache's back (another worker, another apiserver).
    fresh: dict[str, dict[str, Any]] = {}
    for name in ("patched", "put-fresh", "put-stale", "same", "pre-rv"):
        fresh[name] = await reg.update(CONFIGMAPS, namespace, name, _set(k="new"), WriteOptions())

    # A patch computed on the cache's old copy loses the CAS and is made again
    # on etcd's: the other write is kept.
    patched = await reg.update(CONFIGMAPS, namespace, "patched", _set(x="1"), WriteOptions())
    assert patched["data"] == {"k": "new", "x": "1"}

    # A PUT naming the resourceVersion etcd holds succeeds though the cache has an older one.
    body = copy.deepcopy(fresh["put-fresh"])
    body["data"] = {"k": "put"}
    put = await reg.update(
        CONFIGMAPS, namespace, "put-fresh", _body(body), WriteOptions(), replace=True
    )
    assert put["data"] == {"k": "put"}

    # A PUT naming the old resourceVersion (the one the cache holds) is stale: 409.
    stale = copy.deepcopy(fresh["put-stale"])
    stale["metadata"]["resourceVersion"] = created["put-stale"]["metadata"]["resourceVersion"]
    with pytest.raises(errors.ApiError) as refused:
        await reg.update(
            CONFIGMAPS, namespace, "put-stale", _body(stale), WriteOptions(), replace=True
        )
    assert refused.value.code == 409
    still = await setup.store.get(f"/registry/configmaps/{namespace}/put-stale")
    assert still is not None and still.obj["data"] == {"k": "new"}

    # What is a no-op on the cache's copy ({"k": "v"}) is a change on etcd's: written.
    same = await reg.update(CONFIGMAPS, namespace, "same", _set(k="v"), WriteOptions())
    assert same["data"] == {"k": "v"}
    assert int(same["metadata"]["resourceVersion"]) > int(
        fresh["same"]["metadata"]["resourceVersion"]
    )

    # Deleted in etcd, still in the cache: 404 for an update and for a delete.
    await reg.delete(CONFIGMAPS, namespace, "gone", DeleteOptions())
    for write in (
        reg.update(CONFIGMAPS, namespace, "gone", _set(k="z"), WriteOptions()),
        reg.delete(CONFIGMAPS, namespace, "gone", DeleteOptions()),
    ):
        with pytest.raises(errors.ApiError) as missing:
            await write
        assert missing.value.code == 404

    # A delete whose resourceVersion precondition is etcd's (not the cache's) goes ahead.
    rv = fresh["pre-rv"]["metadata"]["resourceVersion"]
    _, gone = await reg.delete(
        CONFIGMAPS, namespace, "pre-rv", DeleteOptions(preconditions={"resourceVersion": rv})
    )
    assert gone

    # Deleted and made again: the cache holds the old uid, the precondition names the new one.
    await reg.delete(CONFIGMAPS, namespace, "pre-uid", DeleteOptions())
    again = await reg.create(
        CONFIGMAPS, namespace, {"metadata": {"name": "pre-uid"}, "data": {}}, WriteOptions()
    )
    uid = again["metadata"]["uid"]
    _, gone = await reg.delete(
        CONFIGMAPS, namespace, "pre-uid", DeleteOptions(preconditions={"uid": uid})
    )
    assert gone
    assert await setup.store.get(f"/registry/configmaps/{namespace}/pre-uid") is None


async def test_binding_a_pod_made_again_behind_the_cache(setup: Setup, namespace: str) -> None:
    """The cache holds a bound pod of that name; etcd holds a new, unbound one:
    'already assigned' from the cache's copy is decided again on etcd's."""
    reg = setup.registry
    pod = await reg.create(PODS, namespace, _pod("p"), WriteOptions())
    bound = await reg.update(
        PODS, namespace, "p", _bind("old-node"), WriteOptions(), subresource="binding"
    )
    await _cached(setup, PODS, namespace, "p", int(bound["metadata"]["resourceVersion"]))
    await _stop_cache(setup, PODS)
    await reg.delete(PODS, namespace, "p", DeleteOptions(grace_period=0))
    again = await reg.create(PODS, namespace, _pod("p"), WriteOptions())
    assert again["metadata"]["uid"] != pod["metadata"]["uid"]

    rebound = await reg.update(
        PODS, namespace, "p", _bind("new-node"), WriteOptions(), subresource="binding"
    )
    assert rebound["spec"]["nodeName"] == "new-node"
    assert rebound["metadata"]["uid"] == again["metadata"]["uid"]
    # A second binding is refused on etcd's word, the pod being bound now.
    with pytest.raises(errors.ApiError) as refused:
        await reg.update(
            PODS, namespace, "p", _bind("other"), WriteOptions(), subresource="binding"
        )
    assert refused.value.code == 409
    assert "already assigned" in str(refused.value)
    await reg.delete(PODS, namespace, "p", DeleteOptions(grace_period=0))
