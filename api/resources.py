"""Every resource skiff serves, described once: group, version, kind, names, scope,
verbs, subresources and schema. Discovery, routing, storage keys, OpenAPI and
validation all read this table, so adding a kind starts (and mostly ends) here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kinds import apps, certificates, core, other
from .schema import Schema

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    schema: Schema
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ALL_VERBS
    storage: str = ""  # etcd resource name when it is not `plural`

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def has_status(self) -> bool:
        """Whether `status` is written only through the /status subresource."""
        return "status" in self.subresources


RESOURCES: tuple[ResourceInfo, ...] = (
    ResourceInfo(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        core.Pod,
        ("po",),
        ("all",),
        frozenset({"status", "binding", "log", "exec", "portforward", "eviction", "attach"}),
    ),
    ResourceInfo(
        "",
        "v1",
        "Service",
        "services",
        "service",
        True,
        core.Service,
        ("svc",),
        ("all",),
        frozenset({"status", "proxy"}),
        ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    ResourceInfo("", "v1", "Endpoints", "endpoints", "endpoints", True, core.Endpoints, ("ep",)),
    ResourceInfo(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        False,
        core.Node,
        ("no",),
        (),
        frozenset({"status", "proxy"}),
    ),
    ResourceInfo(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        False,
        core.Namespace,
        ("ns",),
        (),
        frozenset({"status", "finalize"}),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    ResourceInfo("", "v1", "Event", "events", "event", True, core.Event, ("ev",)),
    ResourceInfo("", "v1", "ConfigMap", "configmaps", "configmap", True, core.ConfigMap, ("cm",)),
    ResourceInfo("", "v1", "Secret", "secrets", "secret", True, core.Secret),
    ResourceInfo(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        True,
        core.ServiceAccount,
        ("sa",),
    ),
    ResourceInfo(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        apps.Deployment,
        ("deploy",),
        ("all",),
        frozenset({"status", "scale"}),
    ),
    ResourceInfo(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        True,
        apps.ReplicaSet,
        ("rs",),
        ("all",),
        frozenset({"status", "scale"}),
    ),
    ResourceInfo(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        True,
        other.EndpointSlice,
    ),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, other.Lease),
    ResourceInfo(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        False,
        certificates.CertificateSigningRequest,
        ("csr",),
        subresources=frozenset({"status", "approval"}),
    ),
    ResourceInfo(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        True,
        other.NewEvent,
        ("ev",),
        storage="events",
    ),
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceInfo | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceInfo | None:
    return _BY_KIND.get((api_version, kind))


def groups() -> list[tuple[str, list[str]]]:
    """(group, versions) for discovery, the core group first."""
    seen: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = seen.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return sorted(seen.items(), key=lambda gv: (gv[0] != "", gv[0]))
