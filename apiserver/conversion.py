"""Serving one stored kind in a second shape: events.k8s.io/v1 Events over core/v1 storage.

`ConvertingRegistry` has the Registry's verbs. It checks unknown fields
against the served shape, converts request objects to the stored shape,
lets the Registry do the work on the stored kind, and converts every object
it returns (watch events included) back.
"""

from __future__ import annotations

from typing import Any

from api import events, hpa, resources
from api.resources import ResourceInfo

from .crd.registry import CustomRegistry
from .registry import Registry, WriteOptions
from .views import Convert, StoredView


class ConvertingRegistry(StoredView):
    def __init__(
        self,
        registry: Registry,
        served: ResourceInfo,
        stored: ResourceInfo,
        to_storage: Convert,
        from_storage: Convert,
    ) -> None:
        super().__init__(registry, served, stored)
        self.to_storage = to_storage
        self.from_storage = from_storage

    def _out(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.from_storage(obj)

    def _in(self, obj: dict[str, Any], opts: WriteOptions) -> dict[str, Any]:
        self.registry._check_unknown_fields(self.served, obj, opts)
        return self.to_storage(obj)


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
