"""The Node authorizer and NodeRestriction: a kubelet sees and changes only its own.

A kubelet authenticates as `system:node:<name>` in group `system:nodes`.
As in Kubernetes:

- the Node authorizer lets it *read* a Secret, ConfigMap, PersistentVolumeClaim
  or ServiceAccount (and create that account's token) only when a pod bound to
  its node references it — found from a graph of the pods on each node, kept
  from the apiserver's pod cache; anything else of those kinds is refused with
  `no relationship found between node '<n>' and this object`;
- everything else a kubelet may ask is what the `system:node` role lists;
- NodeRestriction (admission) narrows the writes: a node may create, change
  and delete only its own Node and its own Lease, change the status of and
  delete only pods bound to it, and create only the mirror pods of its static
  pods: bound to itself, owned by its own Node (the uid checked), and naming
  no ServiceAccount, Secret, ConfigMap or claim (a node could otherwise read
  any of them through the pod: the graph above trusts pods bound to it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from api import resources
from api.resources import ResourceInfo

from .. import errors
from ..auth import UserInfo
from ..registry import WriteOptions
from .attributes import Attributes
from .authorizer import ALLOW, CURRENT, DENY, NO_OPINION
from .bootstrap import NODE
from .cache import ObjectCache
from .rbac import rule_allows

MIRROR = "kubernetes.io/config.mirror"
REFERENCES = "references"  # where the pod cache keeps a pod's `references()`, worked out once
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
GRAPH_KINDS = {
    "secrets": "secret",
    "configmaps": "configmap",
    "persistentvolumeclaims": "pvc",
    "serviceaccounts": "serviceaccount",
}


def node_of(user: UserInfo) -> str:
    """The node a user is, or "" when it is not a kubelet's identity."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX) :]
    return ""


def references(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of what a pod uses: secrets, config maps, claims, its account."""
    spec = pod.get("spec") or {}
    yield "serviceaccount", spec.get("serviceAccountName") or "default"
    for ref in spec.get("imagePullSecrets") or []:
        if ref.get("name"):
            yield "secret", ref["name"]
    for vol in spec.get("volumes") or []:
        if (vol.get("secret") or {}).get("secretName"):
            yield "secret", vol["secret"]["secretName"]
        if (vol.get("configMap") or {}).get("name"):
            yield "configmap", vol["configMap"]["name"]
        if (vol.get("persistentVolumeClaim") or {}).get("claimName"):
            yield "pvc", vol["persistentVolumeClaim"]["claimName"]
        for source in (vol.get("projected") or {}).get("sources") or []:
            if (source.get("secret") or {}).get("name"):
                yield "secret", source["secret"]["name"]
            if (source.get("configMap") or {}).get("name"):
                yield "configmap", source["configMap"]["name"]
    containers = [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]
    for c in containers:
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            if (source.get("secretKeyRef") or {}).get("name"):
                yield "secret", source["secretKeyRef"]["name"]
            if (source.get("configMapKeyRef") or {}).get("name"):
                yield "configmap", source["configMapKeyRef"]["name"]
        for env_from in c.get("envFrom") or []:
            if (env_from.get("secretRef") or {}).get("name"):
                yield "secret", env_from["secretRef"]["name"]
            if (env_from.get("configMapRef") or {}).get("name"):
                yield "configmap", env_from["configMapRef"]["name"]


def loop_configmap(node: str, attrs: Attributes) -> bool:
    """skiff's own: a node's kubelet and proxy read the loop control and write their
    reconcile trace (client/loopcontrol.py, client/trace.py), ConfigMaps in
    kube-system, and no other ConfigMap of that namespace."""
    if not (
        attrs.resource_request
        and attrs.api_group == ""
        and attrs.resource == "configmaps"
        and attrs.namespace == "kube-system"
        and not attrs.subresource
    ):
        return False
    if attrs.name == "skiff-loop-control":
        return attrs.verb in ("get", "list", "watch", "update", "patch")
    # The head and the sealed shards `skiff-trace-<k>-<component>` (client/trace.py).
    own = tuple(
        f"skiff-trace-{shard}{component}-{node}"
        for shard in ("", "0-", "1-", "2-")
        for component in ("kubelet", "kube-proxy")
    )
    if attrs.verb == "create":  # a create names its object only in the body
        return True
    return attrs.name in own and attrs.verb in ("get", "update", "patch")


class NodeGraph:
    """Pods by node, from the pod cache; what each node's pods reference."""

    def __init__(self, pods: ObjectCache) -> None:
        self.pods = pods
        self.by_node: dict[str, set[str]] = {}
        pods.handlers.append(self._changed)

    def _changed(self, key: str, old: dict | None, new: dict | None) -> None:
        for obj, add in ((old, False), (new, True)):
            node = ((obj or {}).get("spec") or {}).get("nodeName")
            if not node:
                continue
            if add:
                self.by_node.setdefault(node, set()).add(key)
            else:
                self.by_node.get(node, set()).discard(key)

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        return [p for k in list(self.by_node.get(node, ())) if (p := self.pods.get(k)) is not None]

    def related(self, node: str, kind: str, namespace: str, name: str) -> bool:
        for pod in self.pods_on(node):
            if pod["metadata"].get("namespace") != namespace:
                continue
            if (kind, name) in pod.get(REFERENCES, ()):
                return True
        return False

    def pod_on(self, node: str, namespace: str, name: str) -> bool:
        pod = self.pods.get(f"{namespace}/{name}")
        return pod is not None and (pod.get("spec") or {}).get("nodeName") == node


class NodeAuthorizer:
    def __init__(self, graph: NodeGraph) -> None:
        self.graph = graph

    def decide(self, user: UserInfo, attrs: Attributes) -> tuple[str, str]:
        node = node_of(user)
        if not node:
            return NO_OPINION, ""
        if loop_configmap(node, attrs):
            return ALLOW, ""
        if attrs.resource_request and attrs.api_group == "" and attrs.resource in GRAPH_KINDS:
            kind = GRAPH_KINDS[attrs.resource]
            token = attrs.resource == "serviceaccounts" and attrs.subresource == "token"
            reading = attrs.verb in ("get", "list", "watch") and not attrs.subresource
            if not (reading or (token and attrs.verb == "create")):
                return NO_OPINION, ""
            if not attrs.name or not attrs.namespace:
                # Kubernetes' node authorizer has no opinion here: RBAC may still
                # allow it (the local-path provisioner lists claims).
                return NO_OPINION, "can only read individual objects"
            if self.graph.related(node, kind, attrs.namespace, attrs.name):
                return ALLOW, ""
            return DENY, f"no relationship found between node '{node}' and this object"
        if any(rule_allows(r, attrs) for r in NODE):
            return ALLOW, ""
        return NO_OPINION, ""


class NodeRestriction:
    """Admission for writes by kubelets, wrapped around the registry like Kubernetes'
    NodeRestriction plugin sits in the admission chain."""

    GUARDED = frozenset({("", "nodes"), ("", "pods"), ("coordination.k8s.io", "leases")})

    def __init__(self, registry: Any, graph: NodeGraph) -> None:
        self.registry = registry
        self.graph = graph

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)

    @staticmethod
    def _node() -> str:
        ctx = CURRENT.get()
        return node_of(ctx.user) if ctx is not None else ""

    def _check(
        self, info: ResourceInfo, namespace: str, name: str, obj: dict | None, sub: str, verb: str
    ) -> None:
        node = self._node()
        if not node:
            return
        if info.plural == "nodes" and name != node:
            raise errors.forbidden(
                "nodes", "", name, f'node "{node}" is not allowed to modify node "{name}"'
            )
        if info.plural == "leases" and (namespace != "kube-node-lease" or name != node):
            raise errors.forbidden(
                "leases",
                info.group,
                name,
                f'node "{node}" is not allowed to modify lease "{namespace}/{name}"',
            )
        if info.plural == "pods":
            if verb == "create":
                refusal = mirror_pod_refusal(node, obj or {})
                if refusal:
                    raise errors.forbidden("pods", "", name, refusal)
                return
            if sub not in ("status", "") or (verb == "update" and sub != "status"):
                raise errors.forbidden(
                    "pods", "", name, f'node "{node}" can only update pod status'
                )
            bound = ((obj or {}).get("spec") or {}).get("nodeName")
            if bound != node:
                raise errors.forbidden(
                    "pods",
                    "",
                    name,
                    f'node "{node}" can only {verb} pods with spec.nodeName set to itself',
                )

    async def create(
        self, info: ResourceInfo, namespace: str, obj: dict[str, Any], opts: WriteOptions
    ) -> dict:
        name = str((obj.get("metadata") or {}).get("name") or "")
        self._check(info, namespace, name, obj, "", "create")
        node = self._node()
        if node and info.plural == "pods":
            owner = obj["metadata"]["ownerReferences"][0]  # one, to this Node: checked above
            nodes = resources.lookup("", "v1", "nodes")
            assert nodes is not None
            try:
                uid = (await self.registry.get(nodes, "", node)).obj["metadata"].get("uid")
            except errors.ApiError:
                uid = None
            if owner.get("uid") != uid:
                raise errors.forbidden(
                    "pods",
                    "",
                    name,
                    f'node "{node}" UID mismatch: expected {owner.get("uid")} got {uid}',
                )
        return await self.registry.create(info, namespace, obj, opts)

    async def update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], dict[str, Any]],
        opts: WriteOptions,
        **kw: Any,
    ) -> dict:
        sub = str(kw.get("subresource") or "")

        def checked(current: dict[str, Any]) -> dict[str, Any]:
            self._check(info, namespace, name, current, sub, "update")
            return compute(current)

        return await self.registry.update(info, namespace, name, checked, opts, **kw)

    async def delete(self, info: ResourceInfo, namespace: str, name: str, opts: Any) -> Any:
        if self._node():
            current = None
            try:
                current = (await self.registry.get(info, namespace, name)).obj
            except errors.ApiError:
                pass
            self._check(info, namespace, name, current, "", "delete")
        return await self.registry.delete(info, namespace, name, opts)


def guarded(info: ResourceInfo) -> bool:
    return (info.group, info.plural) in NodeRestriction.GUARDED


def _references(spec: dict[str, Any]) -> Iterator[str]:
    """The kinds of object a pod spec names that a node may not name in a mirror pod."""
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        yield "a service account"
    if spec.get("imagePullSecrets"):
        yield "secrets"
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        if "secret" in volume:
            yield "secrets"
        if "configMap" in volume:
            yield "configmaps"
        if "persistentVolumeClaim" in volume or "ephemeral" in volume:
            yield "persistentvolumeclaims"
        for source in (volume.get("projected") or {}).get("sources") or []:
            if isinstance(source, dict) and "secret" in source:
                yield "secrets"
            if isinstance(source, dict) and "configMap" in source:
                yield "configmaps"
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            for env in c.get("env") or []:
                source = (env or {}).get("valueFrom") or {}
                if "secretKeyRef" in source:
                    yield "secrets"
                if "configMapKeyRef" in source:
                    yield "configmaps"
            for env_from in c.get("envFrom") or []:
                if "secretRef" in (env_from or {}):
                    yield "secrets"
                if "configMapRef" in (env_from or {}):
                    yield "configmaps"


def mirror_pod_refusal(node: str, pod: dict[str, Any]) -> str:
    """Why NodeRestriction refuses node `node` creating `pod` ("" when it may), in
    Kubernetes' words: only a mirror pod, bound to the node and owned by it alone."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if MIRROR not in (meta.get("annotations") or {}):
        return f'pod does not have "{MIRROR}" annotation, node "{node}" can only create mirror pods'
    if spec.get("nodeName") != node:
        return f'node "{node}" can only create pods with spec.nodeName set to itself'
    owners = meta.get("ownerReferences") or []
    if len(owners) > 1:
        return f'node "{node}" can only create pods with a single owner reference set to itself'
    owner = owners[0] if owners else {}
    if (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
        return f'node "{node}" can only create pods with an owner reference set to itself'
    if owner.get("controller") is not True:
        return f'node "{node}" can only create pods with a controller owner reference set to itself'
    if owner.get("blockOwnerDeletion") is True:
        return f'node "{node}" must not set blockOwnerDeletion on an owner reference'
    for kind in _references(spec):
        return f'node "{node}" can not create pods that reference {kind}'
    return ""
