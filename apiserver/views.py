"""One stored kind served in another shape: the verbs every such view shares.

`StoredView` has the Registry's verbs for a *served* resource whose objects are
stored as another (`stored`): request objects go through `_in` before the
Registry writes them, and every object it returns (watch events included)
through `_out`. events.k8s.io Events over core Events, autoscaling/v1 over v2
(apiserver/conversion.py) and each version of a custom resource
(apiserver/crd/registry.py) differ only in those two steps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from api.resources import ResourceInfo

from .registry import DeleteOptions, ListOptions, Registry, WriteOptions
from .storage import Stored

Convert = Callable[[dict[str, Any]], dict[str, Any]]


class StoredView:
    def __init__(self, registry: Registry, served: ResourceInfo, stored: ResourceInfo) -> None:
        self.registry = registry
        self.served = served
        self.stored = stored
        self.store = registry.store
        self.clock = registry.clock

    def _out(self, obj: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _in(self, obj: dict[str, Any], opts: WriteOptions) -> dict[str, Any]:
        raise NotImplementedError

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
            desired = compute(self._out(current))
            if not isinstance(desired, dict):
                return desired
            desired.setdefault("metadata", {}).setdefault("name", name)
            return self._in(desired, opts)

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
