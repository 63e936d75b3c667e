"""Kubernetes REST paths, parsed into what a request is about.

The shapes, for a group-version prefix P (`/api/v1` or `/apis/<group>/<version>`):

    P/<resource>                                   list, watch, create (cluster-scoped),
                                                   or the all-namespaces list
    P/<resource>/<name>[/<subresource>]            a cluster-scoped object
    P/namespaces/<ns>/<resource>                   list, watch, create in a namespace
    P/namespaces/<ns>/<resource>/<name>[/<sub>]    a namespaced object
    P/watch/...                                    the same, as a watch (deprecated form)

`P/namespaces/<name>/status` and `/finalize` are subresources of the Namespace
itself, which is how kube-apiserver reads that otherwise ambiguous path.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class ResourcePath:
    group: str
    version: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    watch: bool = False  # the /watch/ form

    @property
    def gv(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def parse(path: str) -> ResourcePath | None:
    """A resource path, or None when `path` names no resource (discovery, junk)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = ""
    if rest[0] == "namespaces" and len(rest) in (2, 3) and not namespace:
        # The Namespace object itself (and its subresources).
        resource, name, sub = "namespaces", rest[1], rest[2] if len(rest) == 3 else ""
        return ResourcePath(group, version, resource, "", name, sub, watch)
    if len(rest) > 3:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    sub = rest[2] if len(rest) == 3 else ""
    return ResourcePath(group, version, resource, namespace, name, sub, watch)
