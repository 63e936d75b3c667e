"""What a request asks to do, read from its method and path as Kubernetes'
RequestInfoFactory reads it: a verb and either a resource (group, resource,
subresource, namespace, name) or a non-resource path.

    GET    /api/v1/namespaces/ns/pods            list pods in ns
    GET    /api/v1/namespaces/ns/pods?watch=1    watch pods in ns
    GET    /api/v1/watch/namespaces/ns/pods      watch (the old form)
    POST   /api/v1/namespaces/ns/pods            create
    GET    /api/v1/namespaces/ns/pods/p/log      get pods/log, name p
    PUT    /api/v1/namespaces/ns                 update namespaces, name ns, namespace ns
    DELETE /apis/apps/v1/namespaces/ns/deployments  deletecollection
    GET    /api/v1/nodes/n/proxy/metrics         get nodes/proxy, name n
    GET    /healthz                              non-resource get /healthz
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
# pods/exec, attach and portforward open a stream that can change the pod's
# world: Kubernetes asks for `create` on them whatever the HTTP method.
CREATE_STREAMS = frozenset({"exec", "attach", "portforward"})
METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Attributes:
    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def resource_and_sub(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def non_resource(method: str, path: str) -> Attributes:
    return Attributes(verb=method.lower(), resource_request=False, path=path)


def from_request(method: str, path: str, query: str = "") -> Attributes:
    """The attributes of one HTTP request (pure)."""
    method = method.upper()
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return non_resource(method, path)
    if not rest:
        return non_resource(method, path)  # discovery documents
    watch = False
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
        if not rest:
            return non_resource(method, path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    params = parse_qs(query)
    if not watch and method == "GET" and params.get("watch", [""])[0].lower() in ("1", "true"):
        watch = True
    if watch:
        verb = "watch"  # of one object too: a watch of the list filtered by name
    elif method == "GET" or method == "HEAD":
        verb = "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = METHOD_VERBS.get(method, method.lower())
    if subresource in CREATE_STREAMS and resource == "pods":
        verb = "create"
    if not name and verb in ("list", "watch"):
        # ?fieldSelector=metadata.name=x narrows a list to one name, as Kubernetes reads it.
        for selector in params.get("fieldSelector", []):
            for term in selector.split(","):
                key, _, value = term.partition("=")
                if key.strip() == "metadata.name" and value and not value.startswith("="):
                    name = value.strip()
    return Attributes(
        verb=verb,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        path=path,
    )
