"""Putting authorization together inside the apiserver: caches, policy, bootstrap.

`start(registry)` writes the bootstrap roles and bindings, starts the caches
the authorizers read (roles, bindings, and the pods the Node authorizer
follows) and returns the `Authorization` the HTTP layer uses.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from api import resources
from api.interning import interned

from .. import errors
from ..certs import KeyPair
from ..registry import Registry, WriteOptions, storage_prefix
from ..serviceaccounts import TokenIssuer, admit_pod, random_suffix
from . import (
    bootstrap,
    printers,  # noqa: F401 - registers kubectl columns
)
from .authorizer import Authorizer
from .cache import ObjectCache
from .certificates import CSRRegistry
from .escalation import EscalationGuard
from .node import REFERENCES, NodeAuthorizer, NodeGraph, NodeRestriction, guarded, references
from .rbac import GROUP, Policy, RBACAuthorizer

log = logging.getLogger("skiff.apiserver.authz")
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"


def _info(group: str, plural: str) -> resources.ResourceInfo:
    info = resources.lookup(group, "v1", plural)
    assert info is not None, plural
    return info


@dataclass
class Authorization:
    registry: Registry
    caches: dict[str, ObjectCache] = field(default_factory=dict)
    authorizer: Authorizer | None = None
    policy: Policy | None = None
    graph: NodeGraph | None = None
    issuer: TokenIssuer | None = None
    ca: KeyPair | None = None  # signs approved CertificateSigningRequests

    async def catch_up(self, seconds: float = 0.5) -> None:
        """Before a refusal stands: let the caches reach etcd's current state.

        With several apiserver workers a RoleBinding written through one worker reaches
        another's caches a moment later (a watch delivery); a client that writes it and
        then acts on it at once may land on the other. One keys-only etcd range per cache
        says whether anything newer than the cache exists; the refusal is decided again
        once the cache has it (or after `seconds`). Only refusals pay for this.
        """
        for cache in self.caches.values():
            hub = await self.registry.hubs.hub(storage_prefix(cache.info))
            _, newest, _ = await self.registry.store.changed_since(hub.prefix, hub.latest)
            if newest and await hub.wait_for(newest, seconds):
                await cache.reached(newest, seconds)

    def lookup(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A live object from the caches (what service-account tokens are checked against)."""
        cache = self.caches.get(resource)
        return cache.get(f"{namespace}/{name}") if cache is not None else None

    def guard(self, info: resources.ResourceInfo, registry: Any) -> Any:
        """The registry Handlers use for `info`: RBAC kinds pass the escalation check."""
        if info.group == GROUP and self.policy is not None:
            return EscalationGuard(registry, self.policy)
        if info.plural == "certificatesigningrequests" and self.ca is not None:
            return CSRRegistry(registry, self.ca)
        if info.group == "" and info.plural == "pods":
            registry = ServiceAccountAdmission(registry)
        if guarded(info) and self.graph is not None:
            return NodeRestriction(registry, self.graph)
        return registry

    async def stop(self) -> None:
        for cache in self.caches.values():
            await cache.stop()


class ServiceAccountAdmission:
    """Kubernetes' ServiceAccount admission plugin on pod creation (serviceaccounts.py).

    Unlike Kubernetes, a pod whose ServiceAccount does not exist yet is admitted
    without the token volume instead of refused: a cluster without the
    controller-manager (which makes `default` accounts and kube-root-ca.crt)
    still runs pods.
    """

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)

    async def create(
        self, info: resources.ResourceInfo, namespace: str, obj: dict[str, Any], opts: Any
    ) -> dict:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if "kubernetes.io/config.mirror" not in annotations and isinstance(obj.get("spec"), dict):
            sa = obj["spec"].get("serviceAccountName") or obj["spec"].get("serviceAccount")
            account = await self._account(namespace, sa or "default")
            admit_pod(obj, account, random_suffix())
        return await self.registry.create(info, namespace, obj, opts)

    async def _account(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod's ServiceAccount as Kubernetes' plugin finds it: from the watch
        cache (its lister), else read from etcd (an account made a moment ago
        through another worker), else None. Only read, never changed."""
        info = _info("", "serviceaccounts")
        try:
            return (await self.registry.read(info, namespace, name, "0")).obj
        except errors.ApiError:
            pass
        try:
            return (await self.registry.get(info, namespace, name)).obj
        except errors.ApiError:
            return None


async def reconcile_bootstrap(registry: Registry) -> None:
    """The default cluster roles and bindings, created or repaired."""
    roles_info = _info(GROUP, "clusterroles")
    bindings_info = _info(GROUP, "clusterrolebindings")
    for role in bootstrap.cluster_roles():
        await reconcile(registry, roles_info, role)
    for binding in bootstrap.cluster_role_bindings():
        await reconcile(registry, bindings_info, binding)


async def reconcile(registry: Registry, info: resources.ResourceInfo, want: dict[str, Any]) -> None:
    """Create a bootstrap object, or add back rules and subjects it lost.

    Like Kubernetes' reconciliation, extra rules and subjects an admin added
    are kept, and an object annotated autoupdate=false is left alone.
    """
    name = want["metadata"]["name"]
    try:
        stored = (await registry.get(info, "", name)).obj
    except errors.ApiError as e:
        if e.code != 404:
            raise
        try:
            await registry.create(info, "", want, WriteOptions(field_manager="kube-apiserver"))
        except errors.ApiError as e2:
            if e2.code != 409:
                raise
        return
    if (stored.get("metadata", {}).get("annotations") or {}).get(AUTOUPDATE) == "false":
        return
    field_name = "rules" if info.kind == "ClusterRole" else "subjects"
    if info.kind == "ClusterRole" and want.get("aggregationRule") and stored.get("rules"):
        return  # the aggregation controller owns these rules
    have = list(stored.get(field_name) or [])
    missing = [x for x in want.get(field_name) or [] if x not in have]
    if not missing:
        return

    def add(current: dict[str, Any]) -> dict[str, Any]:
        current[field_name] = list(current.get(field_name) or []) + [
            x for x in missing if x not in (current.get(field_name) or [])
        ]
        return current

    await registry.update(info, "", name, add, WriteOptions(field_manager="kube-apiserver"))


def pod_for_authorizers(pod: dict[str, Any]) -> dict[str, Any]:
    """What the Node authorizer and the bound-token check read of a pod: its name,
    namespace, uid and node, and the (kind, name) of every object it references
    (node.references), as Kubernetes' node graph keeps edges, not pods. Each worker
    held every pod whole here, then every spec (~18, then ~5 KiB a pod)."""
    meta = pod.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "uid") if k in meta}
    spec = {"nodeName": (pod.get("spec") or {}).get("nodeName")}
    edges = sorted(set(references(pod)))
    return interned({"metadata": kept, "spec": spec, REFERENCES: edges})


async def start(registry: Registry, reconcile_defaults: bool = True) -> Authorization:
    """`reconcile_defaults=False`: a worker of several, whose parent reconciled them."""
    if reconcile_defaults:
        await reconcile_bootstrap(registry)
    auth = Authorization(registry)
    for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
        auth.caches[plural] = ObjectCache(registry, _info(GROUP, plural))
    auth.caches["pods"] = ObjectCache(registry, _info("", "pods"), keep=pod_for_authorizers)
    auth.caches["serviceaccounts"] = ObjectCache(registry, _info("", "serviceaccounts"))
    auth.graph = NodeGraph(auth.caches["pods"])
    for cache in auth.caches.values():
        cache.start()
    await asyncio.wait_for(
        asyncio.gather(*(c.synced.wait() for c in auth.caches.values())), timeout=30
    )
    c = auth.caches
    auth.policy = Policy(
        roles=c["roles"].in_namespace,
        role=lambda ns, name: c["roles"].get(f"{ns}/{name}"),
        cluster_role=c["clusterroles"].get,
        role_bindings=c["rolebindings"].in_namespace,
        cluster_role_bindings=c["clusterrolebindings"].values,
        generation=lambda: sum(
            c[k].generation
            for k in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
        ),
    )
    auth.authorizer = Authorizer(RBACAuthorizer(auth.policy), NodeAuthorizer(auth.graph))
    log.info("authorization: Node,RBAC (system:masters always allowed)")
    return auth
