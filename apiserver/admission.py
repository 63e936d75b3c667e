"""Admission: the server-side rules that run after defaulting and before storage.

Each function reproduces one of kube-apiserver's default admission plugins:

- NamespaceLifecycle: nothing is created in a namespace that does not exist
  (404) or is being deleted (403);
- DefaultTolerationSeconds: a pod that says nothing about unreachable or
  not-ready nodes tolerates them for 300 s, after which it is evicted;
- DefaultStorageClass: a claim that names no storage class (the field absent,
  not "") gets the class annotated `storageclass.kubernetes.io/is-default-class`;
- StorageObjectInUseProtection: claims and volumes get the
  `kubernetes.io/pvc-protection` / `kubernetes.io/pv-protection` finalizer, so
  that one in use is not removed under its pod (the controller-manager's
  pvc-protection and pv-protection controllers lift it);
- the Service registry's allocators: ClusterIPs and NodePorts, given out once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.errors import FieldError
from api.resources import ResourceInfo

from . import errors
from .allocators import AlreadyAllocated, NodePorts, RangeFull, ServiceIPs
from .storage import Store

DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


async def check_namespace(store: Store, info: ResourceInfo, namespace: str, name: str) -> None:
    if not info.namespaced:
        return
    stored = await store.get(f"/registry/namespaces/{namespace}")
    if stored is None:
        raise errors.not_found("namespaces", "", namespace)
    if stored.obj.get("metadata", {}).get("deletionTimestamp") or (
        stored.obj.get("status", {}).get("phase") == "Terminating"
    ):
        raise errors.forbidden(
            info.plural,
            info.group,
            name,
            f"unable to create new content in namespace {namespace} because it is being terminated",
            causes=[
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        )


DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


async def set_default_storage_class(store: Store, claim: dict[str, Any]) -> None:
    """The DefaultStorageClass plugin: the newest default class wins when several are marked."""
    spec = claim.get("spec")
    if not isinstance(spec, dict) or spec.get("storageClassName") is not None:
        return
    page = await store.list("/registry/storageclasses/")
    defaults = [
        s.obj
        for s in page.items
        if "true"
        in [
            (s.obj.get("metadata", {}).get("annotations") or {}).get(a)
            for a in DEFAULT_CLASS_ANNOTATIONS
        ]
    ]
    if not defaults:
        return
    defaults.sort(
        key=lambda o: (o["metadata"].get("creationTimestamp", ""), o["metadata"].get("name", ""))
    )
    spec["storageClassName"] = defaults[-1]["metadata"]["name"]


PROTECTION_FINALIZERS = {
    "PersistentVolumeClaim": "kubernetes.io/pvc-protection",
    "PersistentVolume": "kubernetes.io/pv-protection",
}


def add_protection_finalizer(kind: str, obj: dict[str, Any]) -> None:
    finalizer = PROTECTION_FINALIZERS.get(kind)
    if finalizer is None:
        return
    meta = obj.setdefault("metadata", {})
    finalizers = meta.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = meta["finalizers"] = []
    if finalizer not in finalizers:
        finalizers.append(finalizer)


def add_default_tolerations(pod: dict[str, Any]) -> None:
    spec = pod.setdefault("spec", {})
    tolerations = spec.setdefault("tolerations", [])

    def tolerates(key: str) -> bool:
        for t in tolerations:
            effect = t.get("effect", "")
            if effect not in ("", "NoExecute"):
                continue
            if t.get("key", "") == key or (
                t.get("key", "") == "" and t.get("operator") == "Exists"
            ):
                return True
        return False

    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not tolerates(key):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )


NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


@dataclass
class Held:
    """ClusterIPs and NodePorts, e.g. those an update took or no longer needs."""

    ips: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


def held_by(svc: dict[str, Any]) -> Held:
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    ports = [int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")]
    return Held([ip] if ip and ip != "None" else [], ports)


class ServiceAllocation:
    """Assigns a Service's ClusterIP and NodePorts on create and update, frees them
    on delete and when an update stops needing them."""

    def __init__(self, ips: ServiceIPs, ports: NodePorts) -> None:
        self.ips = ips
        self.ports = ports

    async def on_create(self, svc: dict[str, Any], dry_run: bool) -> list[FieldError]:
        spec = svc.setdefault("spec", {})
        owner = f"{svc['metadata'].get('namespace', '')}/{svc['metadata'].get('name', '')}"
        problems: list[FieldError] = []
        svc_type = spec.get("type", "ClusterIP")
        wanted = spec.get("clusterIP") or ""
        allocated_ip: str | None = None
        if svc_type != "ExternalName" and wanted != "None":
            if wanted and not self.ips.contains(wanted):
                return [
                    FieldError(
                        "spec.clusterIPs",
                        "FieldValueInvalid",
                        f"failed to allocate IP {wanted}: the provided IP ({wanted}) "
                        "is not in the valid range. "
                        f"The range of valid IPs is {self.ips.network}",
                        [wanted],
                    )
                ]
            if not dry_run:
                try:
                    allocated_ip = await self.ips.allocate(owner, wanted or None)
                except AlreadyAllocated:
                    return [
                        FieldError(
                            "spec.clusterIPs",
                            "FieldValueInvalid",
                            f"failed to allocate IP {wanted}: provided IP is already allocated",
                            [wanted],
                        )
                    ]
                except RangeFull as e:
                    raise errors.internal(str(e)) from e
                spec["clusterIP"] = allocated_ip
                spec["clusterIPs"] = [allocated_ip]
        elif wanted == "None":
            spec["clusterIPs"] = ["None"]
        if svc_type in ("NodePort", "LoadBalancer"):
            taken: list[int] = []
            for i, port in enumerate(spec.get("ports") or []):
                requested = port.get("nodePort")
                if requested and not self.ports.contains(int(requested)):
                    problems.append(
                        FieldError(
                            f"spec.ports[{i}].nodePort",
                            "FieldValueInvalid",
                            "provided port is not in the valid range. "
                            f"The range of valid ports is {self.ports.low}-{self.ports.high}",
                            requested,
                        )
                    )
                    continue
                if dry_run:
                    continue
                try:
                    port["nodePort"] = await self.ports.allocate(owner, requested)
                    taken.append(port["nodePort"])
                except AlreadyAllocated:
                    problems.append(
                        FieldError(
                            f"spec.ports[{i}].nodePort",
                            "FieldValueInvalid",
                            "provided port is already allocated",
                            requested,
                        )
                    )
            if problems and not dry_run:
                for p in taken:
                    await self.ports.release(p)
        if problems and allocated_ip:
            await self.ips.release(allocated_ip)
        return problems

    async def on_delete(self, svc: dict[str, Any]) -> None:
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            await self.ips.release(ip)
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                await self.ports.release(int(port["nodePort"]))

    async def on_update(
        self, new: dict[str, Any], old: dict[str, Any]
    ) -> tuple[list[FieldError], Held]:
        """NodePorts for a Service that now needs them (a new port, a new type, a
        changed number), a ClusterIP for one leaving ExternalName; fields the new
        type does not use are dropped, as Kubernetes does. Returns what it took,
        for the caller to give back if the write does not happen."""
        spec = new.setdefault("spec", {})
        owner = f"{new['metadata'].get('namespace', '')}/{new['metadata'].get('name', '')}"
        svc_type = spec.get("type", "ClusterIP")
        took, problems = Held(), []
        if svc_type == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        elif not (old.get("spec") or {}).get("clusterIP") and spec.get("clusterIP") != "None":
            wanted = spec.get("clusterIP") or None
            if wanted and not self.ips.contains(wanted):
                return [
                    FieldError(
                        "spec.clusterIPs",
                        "FieldValueInvalid",
                        f"failed to allocate IP {wanted}: not in the valid range. "
                        f"The range of valid IPs is {self.ips.network}",
                        [wanted],
                    )
                ], took
            try:
                ip = await self.ips.allocate(owner, wanted)
            except AlreadyAllocated:
                return [
                    FieldError(
                        "spec.clusterIPs",
                        "FieldValueInvalid",
                        f"failed to allocate IP {wanted}: provided IP is already allocated",
                        [wanted],
                    )
                ], took
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            took.ips.append(ip)
        held = set(held_by(old).ports)
        for i, port in enumerate(spec.get("ports") or []):
            if svc_type not in NODE_PORT_TYPES:
                port.pop("nodePort", None)
                continue
            requested = int(port.get("nodePort") or 0)
            if requested and requested in held:
                continue
            if requested and not self.ports.contains(requested):
                problems.append(
                    FieldError(
                        f"spec.ports[{i}].nodePort",
                        "FieldValueInvalid",
                        "provided port is not in the valid range. The range "
                        f"of valid ports is {self.ports.low}-{self.ports.high}",
                        requested,
                    )
                )
                continue
            try:
                port["nodePort"] = await self.ports.allocate(owner, requested or None)
                took.ports.append(port["nodePort"])
            except AlreadyAllocated:
                problems.append(
                    FieldError(
                        f"spec.ports[{i}].nodePort",
                        "FieldValueInvalid",
                        "provided port is already allocated",
                        requested,
                    )
                )
            except RangeFull as e:
                await self.release(took)
                raise errors.internal(str(e)) from e
        if problems:
            await self.release(took)
            return problems, Held()
        return [], took

    async def release(self, held: Held) -> None:
        for ip in held.ips:
            await self.ips.release(ip)
        for port in held.ports:
            await self.ports.release(port)

    @staticmethod
    def unused(old: dict[str, Any], new: dict[str, Any]) -> Held:
        """What `old` held that `new`, written in its place, no longer does."""
        before, after = held_by(old), held_by(new)
        return Held(
            [ip for ip in before.ips if ip not in after.ips],
            [p for p in before.ports if p not in after.ports],
        )

    @staticmethod
    def keep_allocations(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        """clusterIP is immutable; an update that leaves it out keeps the old one."""
        new_spec, old_spec = new.setdefault("spec", {}), old.get("spec", {})
        if new_spec.get("type") == "ExternalName" or not old_spec.get("clusterIP"):
            pass  # on_update drops or allocates it
        elif not new_spec.get("clusterIP") and old_spec.get("clusterIP"):
            new_spec["clusterIP"] = old_spec["clusterIP"]
            new_spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
        elif new_spec.get("clusterIP") != old_spec.get("clusterIP"):
            return [
                FieldError(
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    "may not change once set",
                    new_spec.get("clusterIP"),
                )
            ]
        old_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
            for p in old_spec.get("ports") or []
        }
        for p in new_spec.get("ports") or []:
            kept = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
            if (
                kept
                and not p.get("nodePort")
                and new_spec.get("type") in ("NodePort", "LoadBalancer")
            ):
                p["nodePort"] = kept
        return []
