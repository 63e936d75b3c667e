"""A custom resource's verbs: the Registry's, with its schema applied on the way in.

Every object written goes through prune → default → validate against the
served version's `openAPIV3Schema`, in that order, as kube-apiserver does,
and is stored under the definition's storage version (conversion `None`:
only `apiVersion` changes between versions). Objects read are served in the
version asked for.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from api import crd
from api.resources import ResourceInfo

from .. import errors, responses
from ..registry import Registry, WriteOptions
from ..views import StoredView


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


class CustomRegistry(StoredView):
    """The Registry's verbs for one served version of a custom resource."""

    def __init__(self, registry: Registry, served: ResourceInfo) -> None:
        custom: crd.CustomVersion = served.custom
        stored = (
            served
            if served.version == custom.storage_version or not custom.storage_version
            else dataclasses.replace(served, version=custom.storage_version)
        )
        super().__init__(registry, served, stored)

    def _out(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("apiVersion") != self.served.api_version:
            obj = {**obj, "apiVersion": self.served.api_version}
        return obj

    def _in(self, obj: dict[str, Any], opts: WriteOptions) -> dict[str, Any]:
        admit(self.served, obj, opts)
        obj["apiVersion"] = self.stored.api_version
        obj["kind"] = self.served.kind
        return obj

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
        return await super().create(_, namespace, obj, opts)
