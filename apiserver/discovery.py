"""Discovery documents: what kubectl reads first to learn what this server has.

`/api`, `/apis`, and one `APIResourceList` per group-version, all generated
from the kind descriptions in `api/`, so a kind added there shows up in
`kubectl api-resources` with nothing else to change. This is the "legacy"
discovery format; kubectl asks for the aggregated v2 form first and accepts
this one when the server answers with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
from functools import lru_cache
from typing import Any

from api import resources as resource_table
from api.resources import ResourceInfo, groups

KUBERNETES_VERSION = ("1", "32", "v1.32.0-skiff")

# Subresources and the kinds and verbs Kubernetes lists for them.
SUBRESOURCES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # name: (group, version, kind, verbs); "" group/version means the parent's
    "status": ("", "", "", ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "binding": ("", "", "Binding", ("create",)),
    "log": ("", "", "Pod", ("get",)),
    "exec": ("", "", "PodExecOptions", ("create", "get")),
    "portforward": ("", "", "PodPortForwardOptions", ("create", "get")),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "finalize": ("", "", "Namespace", ("update",)),
    "proxy": ("", "", "", ("create", "delete", "get", "patch", "update")),
}


def version_info() -> dict[str, str]:
    major, minor, git = KUBERNETES_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-11-24T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"linux/{'amd64' if platform.machine() == 'x86_64' else platform.machine()}",
    }


def _storage_hash(info: ResourceInfo) -> str:
    digest = hashlib.sha256(f"{info.group}/{info.version}/{info.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _resource_entries(info: ResourceInfo) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
        "storageVersionHash": _storage_hash(info),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    entries = [entry]
    for sub in sorted(info.subresources):
        group, version, kind, verbs = SUBRESOURCES.get(sub, ("", "", "", ("get",)))
        sub_entry: dict[str, Any] = {
            "name": f"{info.plural}/{sub}",
            "singularName": "",
            "namespaced": info.namespaced,
            "kind": kind or info.kind,
            "verbs": list(verbs),
        }
        if group:
            sub_entry["group"] = group
            sub_entry["version"] = version
        entries.append(sub_entry)
    return entries


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    return _resource_list(group, version, resource_table.generation())


@lru_cache(maxsize=512)
def _resource_list(group: str, version: str, _generation: int) -> dict[str, Any] | None:
    """Cached per set of custom resources: a CRD established changes the answer."""
    infos = [r for r in resource_table.all_resources() if r.group == group and r.version == version]
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        resources.extend(_resource_entries(info))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list() -> dict[str, Any]:
    return _api_group_list(resource_table.generation())


@lru_cache(maxsize=16)
def _api_group_list(_generation: int) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in groups() if g],
    }


def api_group(name: str) -> dict[str, Any] | None:
    for g, vs in groups():
        if g == name and g:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(g, vs)}
    return None


def etag(document: dict[str, Any]) -> str:
    return (
        '"' + hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32] + '"'
    )
