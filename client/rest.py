"""An async REST client for the Kubernetes API, addressed by kind.

    api = Client(load_config())
    rs = await api.get("apps/v1", "ReplicaSet", "default", "web")
    await api.patch("v1", "Pod", "default", "web-x7k2p", {"metadata": {"labels": None}})

Paths come from `api.resources`, the same table the apiserver routes by.
Failures raise the typed errors of `client.errors`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

from api.resources import ResourceInfo, by_kind
from api.schema import Schema

from . import errors, http1, jsoncodec
from .config import ClientConfig

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


# Kinds learnt from the server's discovery that api/resources.py does not list (custom
# resources): (apiVersion, kind) -> where they live. Filled by `Client.discover`.
_DISCOVERED: dict[tuple[str, str], ResourceInfo] = {}


def resource_info(api_version: str, kind: str) -> ResourceInfo:
    info = by_kind(api_version, kind) or _DISCOVERED.get((api_version, kind))
    if info is None:
        raise ValueError(f"unknown kind {kind} in {api_version}")
    return info


def path_for(info: ResourceInfo, namespace: str = "", name: str = "", sub: str = "") -> str:
    base = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    if info.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{info.plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


class Client:
    def __init__(
        self,
        config: ClientConfig,
        *,
        user_agent: str = "skiff",
        timeout: float = 30.0,
        max_connections: int = 32,
    ) -> None:
        self.config = config
        # Every call, watches included, goes through client/http1.py: kept-alive
        # HTTP/1.1 connections (at most 32 requests at once), one write per request.
        self.pool = http1.Pool(
            config.server,
            ssl_context=_context(config.ssl_context()),
            headers={**config.headers(), "User-Agent": user_agent},
            timeout=timeout,
            max_connections=max_connections,
        )

    async def close(self) -> None:
        await self.pool.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        content = None if body is None else jsoncodec.dumps(body)
        headers = {"Content-Type": content_type} if content is not None else {}
        r = await self.pool.request(method, path, params=params, content=content, headers=headers)
        try:
            data = jsoncodec.loads(r.content)
        except ValueError:
            data = {"message": r.text}
        if r.status_code >= 400:
            raise errors.from_status(r.status_code, data)
        return data

    async def discover(
        self, *, preferred_only: bool = False
    ) -> list[tuple[ResourceInfo, tuple[str, ...]]]:
        """Every top-level resource the server serves now, with its verbs, read from
        discovery (`/api/v1`, `/apis/<group>/<version>`) as client-go's discovery
        client does (`preferred_only`: each group's preferred version alone, as
        ServerPreferredResources); kinds outside api/resources.py become addressable."""
        found: list[tuple[ResourceInfo, tuple[str, ...]]] = []
        versions = [("", v) for v in (await self._call("GET", "/api")).get("versions") or []]
        for group in (await self._call("GET", "/apis")).get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("version")
            versions += [
                (group["name"], v["version"])
                for v in group.get("versions") or []
                if not preferred_only or not preferred or v["version"] == preferred
            ]
        for group_name, version in versions:
            gv = f"{group_name}/{version}" if group_name else version
            path = f"/apis/{gv}" if group_name else f"/api/{version}"
            try:
                listing = await self._call("GET", path)
            except errors.ApiError:
                continue  # a group that went away between the two reads
            for r in listing.get("resources") or []:
                if "/" in r.get("name", ""):
                    continue  # a subresource
                info = by_kind(gv, r["kind"])
                if info is None:
                    info = ResourceInfo(
                        group=group_name,
                        version=version,
                        kind=r["kind"],
                        plural=r["name"],
                        singular=r.get("singularName") or r["kind"].lower(),
                        namespaced=bool(r.get("namespaced")),
                        schema=Schema("any"),
                    )
                    _DISCOVERED[(gv, r["kind"])] = info
                found.append((info, tuple(r.get("verbs") or ())))
        return found

    # -- verbs ----------------------------------------------------------------

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str, *, sub: str = ""
    ) -> dict[str, Any]:
        info = resource_info(api_version, kind)
        return await self._call("GET", path_for(info, namespace, name, sub))

    async def get_path(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        """GET an API path that is not one of the kinds in api/resources.py, e.g. the
        metrics API (`/apis/metrics.k8s.io/v1beta1/...`) the autoscaler reads."""
        return await self._call("GET", path, params=params)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
    ) -> tuple[list[dict[str, Any]], str]:
        """All items (following continue tokens) and the list's resourceVersion."""
        info = resource_info(api_version, kind)
        params: dict[str, Any] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = limit
        items: list[dict[str, Any]] = []
        while True:
            page = await self._call("GET", path_for(info, namespace), params=params)
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items, str(page["metadata"].get("resourceVersion", ""))
            params["continue"] = token

    async def create(
        self,
        obj: dict[str, Any],
        *,
        namespace: str = "",
        field_manager: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        info = resource_info(obj["apiVersion"], obj["kind"])
        ns = namespace or obj.get("metadata", {}).get("namespace", "")
        params = _write_params(field_manager, dry_run)
        return await self._call("POST", path_for(info, ns), params=params, body=obj)

    async def create_subresource(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        sub: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        """POST to a subresource, e.g. a pod's `binding`."""
        info = resource_info(api_version, kind)
        return await self._call("POST", path_for(info, namespace, name, sub), body=body)

    async def update(
        self, obj: dict[str, Any], *, sub: str = "", field_manager: str = ""
    ) -> dict[str, Any]:
        """PUT, guarded by the object's resourceVersion: Conflict when stale."""
        info = resource_info(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        path = path_for(info, meta.get("namespace", ""), meta["name"], sub)
        return await self._call("PUT", path, params=_write_params(field_manager), body=obj)

    async def update_status(
        self, obj: dict[str, Any], *, field_manager: str = ""
    ) -> dict[str, Any]:
        return await self.update(obj, sub="status", field_manager=field_manager)

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Any,
        *,
        patch_type: str = MERGE,
        sub: str = "",
        field_manager: str = "",
    ) -> dict[str, Any]:
        info = resource_info(api_version, kind)
        return await self._call(
            "PATCH",
            path_for(info, namespace, name, sub),
            params=_write_params(field_manager),
            body=patch,
            content_type=patch_type,
        )

    async def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        grace_period: int | None = None,
        propagation: str | None = None,
        uid: str | None = None,
    ) -> dict[str, Any]:
        info = resource_info(api_version, kind)
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        if propagation:
            body["propagationPolicy"] = propagation
        if uid:
            body["preconditions"] = {"uid": uid}
        return await self._call("DELETE", path_for(info, namespace, name), body=body)

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
        bookmarks: bool = True,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) pairs until the server ends the stream.

        An ERROR event becomes the matching typed error (Gone for 410), so
        an informer can tell "relist" from "reconnect".
        """
        info = resource_info(api_version, kind)
        params: dict[str, Any] = {"watch": "1", "timeoutSeconds": timeout_seconds}
        if resource_version:
            params["resourceVersion"] = resource_version
        if bookmarks:
            params["allowWatchBookmarks"] = "true"
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        async with self.pool.stream(
            "GET",
            path_for(info, namespace),
            params=params,
            connect_timeout=10.0,
            read_timeout=timeout_seconds + 30.0,
        ) as r:
            if r.status_code >= 400:
                body = await r.aread()
                try:
                    raise errors.from_status(r.status_code, json.loads(body))
                except ValueError:
                    raise errors.from_status(r.status_code, {"message": body.decode()}) from None
            async for line in _lines(r):
                event = jsoncodec.loads(line)
                if event["type"] == "ERROR":
                    status = event.get("object") or {}
                    raise errors.from_status(int(status.get("code") or 500), status)
                obj = event["object"]
                if event["type"] != "BOOKMARK":
                    obj.setdefault("apiVersion", api_version)
                    obj.setdefault("kind", kind)
                yield event["type"], obj


async def _lines(r: http1.StreamResponse) -> AsyncIterator[bytes]:
    """The non-empty lines of a watch stream, as bytes: one JSON event each. Split here
    rather than by `aiter_lines`, which first decodes every chunk to text (and splits on
    any line break): the decoder reads UTF-8 bytes itself."""
    pending = b""
    async for chunk in r.aiter_bytes():
        if b"\n" not in chunk:
            pending += chunk
            continue
        *lines, rest = (pending + chunk).split(b"\n")
        pending = rest
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The config's SSL context; False (kubeconfig insecure-skip-tls-verify) still
    speaks TLS, without checking the server's certificate."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _write_params(field_manager: str = "", dry_run: bool = False) -> dict[str, str]:
    params = {}
    if field_manager:
        params["fieldManager"] = field_manager
    if dry_run:
        params["dryRun"] = "All"
    return params
