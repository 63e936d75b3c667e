"""Serving one stored kind in a second shape: events.k8s.io/v1 Events over core/v1 storage.

`ConvertingRegistry` has the Registry's verbs. It checks unknown fields
against the served shape, converts request objects to the stored shape,
lets the Registry do the work on the stored kind, and converts every object
it returns (watch events included) back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from api import events, hpa, resources
from api.resources import ResourceInfo

from .crd.registry import CustomRegistry
from .registry import DeleteOptions, ListOptions, Registry, WriteOptions
from .storage import Stored

Convert = Callable[[dict[str, Any]], dict[str, Any]]


class ConvertingRegistry:
    def __init__(
        self,
        registry: Registry,
        served: ResourceInfo,
        stored: ResourceInfo,
        to_storage: Convert,
        from_storage: Convert,
    ) -> None:
        self.registry = registry
        self.served = served
        self.stored = stored
        self.to_storage = to_storage
        self.from_storage = from_storage
        self.store = registry.store
        self.clock = registry.clock

    def _out(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.from_storage(obj)

    def _in(self, obj: dict[str, Any], opts: WriteOptions) -> dict[str, Any]:
        self.registry._check_unknown_fields(self.served, obj, opts)
        return self.to_storage(obj)

    async def get(self, _: ResourceInfo, namespace: str, name: str) -> Stored:
        stored = await self.registry.get(self.stored, namespace, name)
        return Stored(self._out(stored.obj), stored.revision)

    async def list(
        self, _: ResourceInfo, namespace: str, opts: ListOptions
    ) -> tuple[list[dict], int, str, int | None]:
        items, revision, token, remaining = await self.registry.list(self.stored, namespace, opts)
        return [self._out(i) for i in items], revision, token, remaining

    async def create(
        self, _: ResourceInfo, namespace: str, obj: dict[str, Any], opts: WriteOptions
    ) -> dict:
        created = await self.registry.create(self.stored, namespace, self._in(obj, opts), opts)
        return self._out(created)

    async def update(
        self,
        _: ResourceInfo,
        namespace: str,
        name: str,
        compute: Convert,
        opts: WriteOptions,
        *,
        subresource: str = "",
        replace: bool = False,
    ) -> dict:
        def stored_compute(current: dict[str, Any]) -> dict[str, Any]:
            return self._in(compute(self._out(current)), opts)

        updated = await self.registry.update(
            self.stored,
            namespace,
            name,
            stored_compute,
            opts,
            subresource=subresource,
            replace=replace,
        )
        return self._out(updated)

    async def delete(
        self, _: ResourceInfo, namespace: str, name: str, opts: DeleteOptions
    ) -> tuple[dict, bool]:
        obj, gone = await self.registry.delete(self.stored, namespace, name, opts)
        return self._out(obj), gone

    async def delete_collection(
        self, _: ResourceInfo, namespace: str, list_opts: ListOptions, opts: DeleteOptions
    ) -> list[dict]:
        deleted = await self.registry.delete_collection(self.stored, namespace, list_opts, opts)
        return [self._out(d) for d in deleted]

    async def watch(
        self, _: ResourceInfo, namespace: str, opts: ListOptions, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async for event_type, obj in self.registry.watch(
            self.stored, namespace, opts, resource_version
        ):
            yield event_type, obj if event_type == "PROGRESS" else self._out(obj)


def registry_for(
    registry: Registry, info: ResourceInfo
) -> Registry | ConvertingRegistry | CustomRegistry:
    if info.custom is not None:
        return CustomRegistry(registry, info)  # a CRD's kind: crd/registry.py
    if info.group == "events.k8s.io" and info.kind == "Event":
        core = resources.lookup("", "v1", "events")
        assert core is not None
        return ConvertingRegistry(registry, info, core, events.to_core, events.from_core)
    if info.group == "autoscaling" and info.version == "v1":
        stored = resources.lookup("autoscaling", "v2", "horizontalpodautoscalers")
        assert stored is not None
        return ConvertingRegistry(registry, info, stored, hpa.v1_to_v2, hpa.v2_to_v1)
    return registry
