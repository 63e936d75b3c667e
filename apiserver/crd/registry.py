"""A custom resource's verbs: the Registry's, with its schema applied on the way in.

Every object written goes through prune → default → validate against the
served version's `openAPIV3Schema`, in that order, as kube-apiserver does,
and is stored under the definition's storage version (conversion `None`:
only `apiVersion` changes between versions). Objects read are served in the
version asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from api import crd
from api.resources import ResourceInfo

from .. import errors, responses
from ..registry import DeleteOptions, ListOptions, Registry, WriteOptions
from ..storage import Stored

Convert = Callable[[dict[str, Any]], dict[str, Any]]


def admit(info: ResourceInfo, obj: dict[str, Any], opts: WriteOptions) -> None:
    """Prune unknown fields (refused under fieldValidation=Strict, warned under Warn),
    fill defaults, then validate; a 422 with one cause per problem."""
    custom: crd.CustomVersion = info.custom
    dropped = crd.prune(custom.schema, obj)
    if dropped:
        messages = [f'unknown field "{path}"' for path in dropped]
        if opts.field_validation == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(messages))
        if opts.field_validation != "Ignore":
            opts.warnings.extend(messages)
    crd.apply_defaults(custom.schema, obj)
    problems = crd.validate(custom.schema, obj)
    if problems:
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise errors.invalid(info.kind, info.group, name, problems)


def deprecation_warning(info: ResourceInfo) -> str:
    """The `Warning` header for a deprecated version, as kube-apiserver words it."""
    custom: crd.CustomVersion = info.custom
    text = custom.deprecation_warning or f"{info.api_version} {info.kind} is deprecated"
    return responses.warning_header([text])


class CustomRegistry:
    """The Registry's verbs for one served version of a custom resource."""

    def __init__(self, registry: Registry, served: ResourceInfo) -> None:
        self.registry = registry
        self.served = served
        custom: crd.CustomVersion = served.custom
        self.stored = (
            served
            if served.version == custom.storage_version or not custom.storage_version
            else dataclasses.replace(served, version=custom.storage_version)
        )
        self.store = registry.store
        self.clock = registry.clock

    def _out(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("apiVersion") != self.served.api_version:
            obj = {**obj, "apiVersion": self.served.api_version}
        return obj

    def _in(self, obj: dict[str, Any], opts: WriteOptions) -> dict[str, Any]:
        admit(self.served, obj, opts)
        obj["apiVersion"] = self.stored.api_version
        obj["kind"] = self.served.kind
        return obj

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
        if self.served.custom.terminating:
            raise errors.ApiError(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            )
        obj.setdefault("metadata", {})
        if self.served.namespaced:
            obj["metadata"]["namespace"] = namespace
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
