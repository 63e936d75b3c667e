"""Every resource skiff serves, described once: group, version, kind, names, scope,
verbs, subresources and schema. Discovery, routing, storage keys, OpenAPI and
validation all read this table, so adding a kind starts (and mostly ends) here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .kinds import apiextensions, apps, autoscaling, batch, core, other, rbac, storage
from .schema import Schema

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
RBAC_GROUP = "rbac.authorization.k8s.io"


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
    # A custom resource's version (api/crd.CustomVersion); None for built-in kinds.
    custom: Any = None

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
        subresources=frozenset({"token"}),
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
    ResourceInfo(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        True,
        apps.DaemonSet,
        ("ds",),
        ("all",),
        frozenset({"status"}),
    ),
    ResourceInfo(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        True,
        apps.StatefulSet,
        ("sts",),
        ("all",),
        frozenset({"status", "scale"}),
    ),
    ResourceInfo(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        True,
        apps.ControllerRevision,
    ),
    ResourceInfo(
        "batch", "v1", "Job", "jobs", "job", True, batch.Job, (), ("all",), frozenset({"status"})
    ),
    ResourceInfo(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        True,
        batch.CronJob,
        ("cj",),
        ("all",),
        frozenset({"status"}),
    ),
    ResourceInfo(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        True,
        core.PersistentVolumeClaim,
        ("pvc",),
        (),
        frozenset({"status"}),
    ),
    ResourceInfo(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        False,
        storage.PersistentVolume,
        ("pv",),
        (),
        frozenset({"status"}),
    ),
    ResourceInfo(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        False,
        storage.StorageClass,
        ("sc",),
    ),
    ResourceInfo(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        True,
        core.ReplicationController,
        ("rc",),
        ("all",),
        frozenset({"status", "scale"}),
    ),
    ResourceInfo(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        autoscaling.HorizontalPodAutoscaler,
        ("hpa",),
        ("all",),
        frozenset({"status"}),
    ),
    # Served as a view of the v2 objects (apiserver/conversion.py, api/hpa.py).
    ResourceInfo(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        autoscaling.HorizontalPodAutoscalerV1,
        ("hpa",),
        ("all",),
        frozenset({"status"}),
    ),
    # RBAC (authorization by roles) and the review kinds, which are asked, never stored.
    ResourceInfo(RBAC_GROUP, "v1", "Role", "roles", "role", True, rbac.Role),
    ResourceInfo(
        RBAC_GROUP, "v1", "ClusterRole", "clusterroles", "clusterrole", False, rbac.ClusterRole
    ),
    ResourceInfo(
        RBAC_GROUP, "v1", "RoleBinding", "rolebindings", "rolebinding", True, rbac.RoleBinding
    ),
    ResourceInfo(
        RBAC_GROUP,
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        False,
        rbac.ClusterRoleBinding,
    ),
    ResourceInfo(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        False,
        rbac.SelfSubjectAccessReview,
        verbs=CREATE_ONLY,
    ),
    ResourceInfo(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        False,
        rbac.SelfSubjectRulesReview,
        verbs=CREATE_ONLY,
    ),
    ResourceInfo(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        False,
        rbac.SubjectAccessReview,
        verbs=CREATE_ONLY,
    ),
    ResourceInfo(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        True,
        rbac.LocalSubjectAccessReview,
        verbs=CREATE_ONLY,
    ),
    ResourceInfo(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        False,
        rbac.SelfSubjectReview,
        verbs=CREATE_ONLY,
    ),
    ResourceInfo(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        False,
        rbac.TokenReview,
        verbs=CREATE_ONLY,
    ),
)

_CSR = ResourceInfo(
    "certificates.k8s.io",
    "v1",
    "CertificateSigningRequest",
    "certificatesigningrequests",
    "certificatesigningrequest",
    False,
    rbac.CertificateSigningRequest,
    ("csr",),
    subresources=frozenset({"status", "approval"}),
)
_CRD = ResourceInfo(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    "customresourcedefinition",
    False,
    apiextensions.CustomResourceDefinition,
    ("crd", "crds"),
    ("api-extensions",),
    frozenset({"status"}),
)
# The group-versions the apiserver serves, as kube-aggregator lists them; skiff's are
# all local (apiserver/apiservices.py registers them), it aggregates no other server.
_APISERVICE = ResourceInfo(
    "apiregistration.k8s.io",
    "v1",
    "APIService",
    "apiservices",
    "apiservice",
    False,
    other.APIService,
    categories=("api-extensions",),
    subresources=frozenset({"status"}),
)
RESOURCES = (*RESOURCES, _CSR, _CRD, _APISERVICE)

# Kinds served by the apiserver's authorization layer, never stored in etcd.
REVIEW_GROUPS = frozenset({"authorization.k8s.io", "authentication.k8s.io"})

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


# Custom resources: the served versions of Established CustomResourceDefinitions,
# replaced as a whole by the apiserver's CRD controller (apiserver/crd/). Built-in
# kinds are found first, so they cost one dictionary miss at most.
_CUSTOM_BY_PATH: dict[tuple[str, str, str], ResourceInfo] = {}
_CUSTOM_BY_KIND: dict[tuple[str, str], ResourceInfo] = {}
_generation = [0]


def lookup(group: str, version: str, plural: str) -> ResourceInfo | None:
    info = _BY_PATH.get((group, version, plural))
    if info is None and _CUSTOM_BY_PATH:
        return _CUSTOM_BY_PATH.get((group, version, plural))
    return info


def by_kind(api_version: str, kind: str) -> ResourceInfo | None:
    info = _BY_KIND.get((api_version, kind))
    if info is None and _CUSTOM_BY_KIND:
        return _CUSTOM_BY_KIND.get((api_version, kind))
    return info


def set_custom(infos: list[ResourceInfo]) -> None:
    """Serve exactly these custom resources from now on (all of them, every call)."""
    by_path = {
        (r.group, r.version, r.plural): r
        for r in infos
        if (r.group, r.version, r.plural) not in _BY_PATH
    }
    _CUSTOM_BY_PATH.clear()
    _CUSTOM_BY_PATH.update(by_path)
    _CUSTOM_BY_KIND.clear()
    _CUSTOM_BY_KIND.update({(r.api_version, r.kind): r for r in by_path.values()})
    _generation[0] += 1


def custom() -> list[ResourceInfo]:
    return list(_CUSTOM_BY_PATH.values())


def generation() -> int:
    """Moves whenever the set of custom resources changes (discovery caches key on it)."""
    return _generation[0]


def all_resources() -> list[ResourceInfo]:
    return [*RESOURCES, *_CUSTOM_BY_PATH.values()]


def groups() -> list[tuple[str, list[str]]]:
    """(group, versions) for discovery, the core group first."""
    seen: dict[str, list[str]] = {}
    for r in all_resources():
        versions = seen.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    builtin = {r.group for r in RESOURCES}
    for group, versions in seen.items():
        if group not in builtin:
            versions.sort(key=version_priority)
    return sorted(seen.items(), key=lambda gv: (gv[0] != "", gv[0]))


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order, highest first: v2, v1, v1beta2, v1beta1, v1alpha1, then
    other names alphabetically; the first is a group's preferred version."""
    m = _KUBE_VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), version)
