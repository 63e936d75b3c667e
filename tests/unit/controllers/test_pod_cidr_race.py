"""The node IPAM race, made deterministic: the informer never sees the controller's
own writes (as when many Nodes register faster than the watch delivers)."""

from __future__ import annotations

import asyncio
from typing import Any

from controllers.nodelifecycle import NodeLifecycleController


class Store:
    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    def get(self, key: str) -> dict[str, Any] | None:
        return self.objects.get(key)

    def list(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def by_index(self, _index: str, _key: str) -> list[dict[str, Any]]:
        return []


class Informer:
    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.store = Store(objects)
        self.on_delete: list[Any] = []

    def add_handlers(self, **handlers: Any) -> None:
        if handlers.get("on_delete"):
            self.on_delete.append(handlers["on_delete"])


class Informers:
    def __init__(self, nodes: dict[str, dict[str, Any]]) -> None:
        self.by_kind = {"Node": Informer(nodes), "Lease": Informer({}), "Pod": Informer({})}

    def get(self, _api_version: str, kind: str) -> Informer:
        return self.by_kind[kind]

    async def wait_for_sync(self) -> None:
        return None


class Client:
    """Records spec patches; the informer cache is left as it was (the lagging watch)."""

    def __init__(self) -> None:
        self.cidrs: dict[str, str] = {}

    async def patch(self, _v: str, _kind: str, _ns: str, name: str, body: dict, **_: Any) -> dict:
        if "podCIDR" in body.get("spec", {}):
            self.cidrs[name] = body["spec"]["podCIDR"]
        return {}


class Recorder:
    async def event(self, *_: Any) -> None:
        return None


class Ctx:
    def __init__(self, nodes: dict[str, dict[str, Any]]) -> None:
        self.client = Client()
        self.informers = Informers(nodes)
        self.recorder = Recorder()


def node(name: str, cidr: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {}}


def test_nodes_reconciled_before_the_watch_catches_up_get_distinct_cidrs() -> None:
    nodes = {f"n{i}": node(f"n{i}") for i in range(20)}
    nodes["old"] = node("old", "10.244.0.0/24")  # had its CIDR before a restart
    ctx = Ctx(nodes)
    controller = NodeLifecycleController(ctx)  # type: ignore[arg-type]

    async def go() -> None:
        controller.occupy_existing()  # what run() does before its workers start
        for name in nodes:
            await controller.reconcile(name)
        await controller.reconcile("n0")  # a second pass keeps what n0 got

    asyncio.run(go())
    got = ctx.client.cidrs
    assert len(got) == 20
    assert len(set(got.values())) == 20, got
    assert "10.244.0.0/24" not in got.values()


def test_a_deleted_nodes_cidr_is_free_again() -> None:
    nodes = {"a": node("a"), "b": node("b")}
    ctx = Ctx(nodes)
    controller = NodeLifecycleController(ctx)  # type: ignore[arg-type]
    asyncio.run(controller.reconcile("a"))
    first = ctx.client.cidrs["a"]
    for handler in ctx.informers.get("v1", "Node").on_delete:
        handler(nodes.pop("a"))
    asyncio.run(controller.reconcile("b"))
    assert ctx.client.cidrs["b"] == first
