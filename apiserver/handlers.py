"""The REST verbs: from an HTTP request on a resource path to a registry call.

One function per verb, as kube-apiserver's `endpoints/handlers` has them.
`handle` picks the verb from the method and the path's shape:

    GET    collection → list (or watch with ?watch=1)   object → get
    POST   collection → create                          pods/x/binding → bind
                                                        pods/x/eviction → evict
    PUT    object     → update (also /status, /scale, namespaces/x/finalize)
    PATCH  object     → patch (JSON Patch, merge patch)
    DELETE collection → deletecollection                object → delete
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from api import resources
from api.kinds import apps as apps_kinds
from api.kinds import core as core_kinds
from api.resources import ResourceInfo

from . import errors, managed_fields, patch, requests, responses, subresources, tables
from .conversion import ConvertingRegistry, registry_for
from .crd.registry import CustomRegistry, deprecation_warning
from .paths import ResourcePath
from .registry import Registry, WriteOptions, check_decoded, check_typed
from .watch_stream import WatchRequest, stream

# Kinds whose DELETE answers with the object rather than a Status, as their
# Kubernetes storage sets ReturnDeletedObject.
RETURNS_DELETED_OBJECT = frozenset({"Pod", "Service", "Namespace"})
STATUS_SUBRESOURCE = "status"


def verb_of(method: str, path: ResourcePath, watch: bool) -> str:
    """Kubernetes' request verb, for metrics, logs and (later) authorization."""
    if watch:
        return "watch"
    if method == "GET":
        return "get" if path.name else "list"
    if method == "DELETE":
        return "delete" if path.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def scope_of(info: ResourceInfo, path: ResourcePath) -> str:
    """The metric's scope label: one object, a namespace, or the whole cluster."""
    if path.name:
        return "resource"
    return "namespace" if info.namespaced and path.namespace else "cluster"


def _is_watch(request: Request, path: ResourcePath) -> bool:
    return path.watch or request.query_params.get("watch", "").lower() in ("1", "true")


class Handlers:
    def __init__(
        self,
        registry: Registry,
        wrap: Callable[[ResourceInfo, Any], Any] | None = None,
        kinds_caught_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.registry = registry
        self.wrap = wrap  # authz: RBAC kinds' writes pass the escalation check
        # crd/controller.py's catch_up: a kind defined a moment ago through another worker
        self.kinds_caught_up = kinds_caught_up

    def _reg(self, info: ResourceInfo) -> Registry | ConvertingRegistry | CustomRegistry:
        reg = registry_for(self.registry, info)
        return self.wrap(info, reg) if self.wrap is not None else reg

    async def handle(self, request: Request, path: ResourcePath) -> Response:
        info = resources.lookup(path.group, path.version, path.resource)
        if info is None and self.kinds_caught_up is not None:
            await self.kinds_caught_up()
            info = resources.lookup(path.group, path.version, path.resource)
        if info is None:
            raise errors.path_not_found()
        if info.custom is not None and info.custom.deprecated:
            # Every request to a deprecated CRD version carries its warning (crd/registry.py).
            response = await self._handle(request, path, info)
            warning = deprecation_warning(info)
            if warning not in response.headers.getlist("warning"):
                response.headers.append("Warning", warning)
            return response
        return await self._handle(request, path, info)

    async def _handle(self, request: Request, path: ResourcePath, info: ResourceInfo) -> Response:
        if path.namespace and not info.namespaced:
            raise errors.path_not_found()
        if path.subresource and path.subresource not in info.subresources:
            raise errors.path_not_found()
        watch = _is_watch(request, path)
        request.state.verb = verb_of(request.method, path, watch)
        request.state.resource = info.plural
        request.state.subresource = path.subresource
        request.state.group, request.state.version = info.group, info.version
        request.state.scope = scope_of(info, path)
        method = request.method
        if watch:
            if method != "GET" or path.subresource:
                raise errors.method_not_allowed(method, request.url.path)
            return await self.watch(request, info, path)
        if not path.name:
            if method == "GET":
                return await self.list(request, info, path)
            if method == "POST":
                return await self.create(request, info, path)
            if method == "DELETE":
                return await self.delete_collection(request, info, path)
            raise errors.method_not_allowed(method, request.url.path)
        if method == "GET" and path.subresource in ("", STATUS_SUBRESOURCE):
            return await self.get(request, info, path)
        if method == "GET" and path.subresource == "scale":
            stored = await self._reg(info).get(info, path.namespace, path.name)
            return responses.send(subresources.to_scale(stored.obj, info))
        if method == "POST" and path.subresource == "binding":
            return await self.bind(request, info, path)
        if method == "POST" and path.subresource == "eviction" and info.kind == "Pod":
            return await self.evict(request, info, path)
        if method == "PUT" and path.subresource in (
            "",
            STATUS_SUBRESOURCE,
            "scale",
            "finalize",
            "approval",
        ):
            return await self.update(request, info, path)
        if method == "PATCH" and path.subresource in ("", STATUS_SUBRESOURCE, "scale"):
            return await self.patch(request, info, path)
        if method == "DELETE" and not path.subresource:
            return await self.delete(request, info, path)
        if path.subresource in ("log", "exec", "attach", "portforward", "proxy"):
            raise errors.service_unavailable(
                f"pods/{path.subresource} is served by the node's kubelet, "
                "which this server cannot reach"
            )
        raise errors.method_not_allowed(method, request.url.path)

    # -- reads ----------------------------------------------------------------

    def _table_mode(self, request: Request) -> str:
        if not tables.accepts_table(request.headers.get("accept", "")):
            return ""
        return request.query_params.get("includeObject", "Metadata") or "Metadata"

    async def get(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        reg = self._reg(info)
        version = request.query_params.get("resourceVersion", "")
        mode = self._table_mode(request)
        accept = request.headers.get("accept", "")
        read_json = getattr(reg, "read_json", None)
        if read_json is not None and not mode and not (accept and responses.wants_yaml(accept)):
            # JSON from the watch cache's bytes, not decoded and encoded again.
            body = await read_json(info, path.namespace, path.name, version)
            return Response(body, 200, media_type="application/json")
        read = getattr(reg, "read", None)  # the plain registry's; views read through get
        if read is not None:
            stored = await read(info, path.namespace, path.name, version)
        else:
            stored = await reg.get(info, path.namespace, path.name)
        if mode:
            return responses.send(responses.table(info, [stored.obj], mode))
        return responses.send(stored.obj, accept=accept)

    async def list(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        opts = requests.list_options(info, request)
        items, revision, token, remaining = await self._reg(info).list(info, path.namespace, opts)
        mode = self._table_mode(request)
        if mode:
            return responses.send(responses.table(info, items, mode, revision, token, remaining))
        accept = request.headers.get("accept", "")
        encoded = getattr(items, "encoded", None)  # from the watch cache (registry.CachedItems)
        if encoded is not None and not (accept and responses.wants_yaml(accept)):
            return responses.send_list(info, encoded, revision, token, remaining)
        body = responses.list_object(info, items, revision, token, remaining)
        return responses.send(body, accept=accept)

    async def watch(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        q = request.query_params
        timeout_text = q.get("timeoutSeconds", "")
        timeout = (
            float(requests.parse_int64("timeoutSeconds", timeout_text)) if timeout_text else None
        )
        from_revision = requests.parse_resource_version(q.get("resourceVersion", ""))
        req = WatchRequest(
            info=info,
            namespace=path.namespace,
            options=requests.list_options(info, request, watch=True),
            resource_version=q.get("resourceVersion", ""),
            bookmarks=q.get("allowWatchBookmarks", "").lower() in ("1", "true"),
            initial_events_end=q.get("sendInitialEvents", "").lower() == "true",
            table=self._table_mode(request),
            scope=scope_of(info, path),
        )
        if path.name:
            # A watch on one object is a watch of the list, filtered by name.
            name_filter = f"metadata.name={path.name}"
            selector = q.get("fieldSelector", "")
            req.options.fields = requests.field_selector(
                info, f"{selector},{name_filter}" if selector else name_filter
            )
        if timeout is not None:
            req.timeout = max(timeout, 0.0)
        if from_revision:
            # A watch from a revision the store has not reached waits for it, as
            # kube-apiserver's watch cache does, then answers 504.
            await self.registry.wait_for_revision(from_revision)
        return StreamingResponse(
            stream(self._reg(info), req),  # type: ignore[arg-type]
            media_type="application/json",
            headers={"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"},
        )

    # -- writes ---------------------------------------------------------------

    async def create(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        if info.namespaced and not path.namespace:
            raise errors.method_not_allowed("POST", request.url.path)
        opts = requests.write_options(request)
        obj = await requests.object_body(request, opts)
        requests.check_kind(info, obj)
        check_decoded(info, obj)
        opts.typed_as = info  # the registry need not walk it again
        body_ns = (obj.get("metadata") or {}).get("namespace")
        if info.namespaced and body_ns and body_ns != path.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        created = await self._reg(info).create(info, path.namespace, obj, opts)
        return responses.send(created, 201, warnings=opts.warnings)

    async def bind(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        opts = requests.write_options(request)
        binding = await requests.object_body(request)
        check_typed(core_kinds.Binding, "Binding", "v1", "", binding)
        now = self.registry.clock()
        await self._reg(info).update(
            info,
            path.namespace,
            path.name,
            lambda pod: subresources.bind(pod, binding, now),
            opts,
            subresource="binding",
        )
        return responses.send(responses.created_status(), 201)

    async def evict(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        """pods/x/eviction (what `kubectl drain` posts): the pod is deleted with the
        Eviction's deleteOptions. skiff serves no PodDisruptionBudgets, so no budget
        can refuse it: Kubernetes evicts the same way a pod that no budget selects."""
        eviction = await requests.object_body(request)
        subresources.check_eviction(eviction, path.name)
        opts = requests.delete_options_from(
            eviction.get("deleteOptions") or {}, request.query_params, requests.dry_run(request)
        )
        await self._reg(info).delete(info, path.namespace, path.name, opts)
        return responses.send(responses.created_status(), 201)

    async def update(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        opts = requests.write_options(request)
        body = await requests.object_body(request, opts)
        compute: Callable[[dict[str, Any]], dict[str, Any]]
        if path.subresource == "scale":
            check_typed(apps_kinds.Scale, "Scale", "v1", "autoscaling", body)

            def compute(current: dict[str, Any]) -> dict[str, Any]:
                return subresources.apply_scale(info, current, body)
        elif path.subresource == "finalize":
            check_decoded(info, body)

            def compute(current: dict[str, Any]) -> dict[str, Any]:
                return subresources.finalize(current, body)
        else:
            requests.check_kind(info, body)

            def compute(current: dict[str, Any]) -> dict[str, Any]:
                return json.loads(json.dumps(body))  # a fresh copy for every retry

        updated = await self._reg(info).update(
            info,
            path.namespace,
            path.name,
            compute,
            opts,
            subresource=path.subresource,
            replace=True,
        )
        if path.subresource == "scale":
            return responses.send(subresources.to_scale(updated, info), warnings=opts.warnings)
        return responses.send(updated, warnings=opts.warnings)

    async def patch(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        opts = requests.write_options(request)
        content_type = requests.media_type(request)
        raw = await requests.read_body(request)
        if content_type == patch.JSON_PATCH:
            operations = requests.decode(raw, content_type)

            def change(target: dict[str, Any]) -> dict[str, Any]:
                return patch.json_patch(target, operations)
        elif content_type == patch.MERGE_PATCH:
            document = requests.decode(raw, content_type)
            if not isinstance(document, dict):
                raise errors.bad_request("a merge patch must be a JSON object")

            def change(target: dict[str, Any]) -> dict[str, Any]:
                return patch.merge_patch(target, document)
        elif content_type == patch.STRATEGIC_MERGE_PATCH and info.custom is not None:
            # Custom resources carry no patch strategy: Kubernetes refuses it (415).
            raise errors.unsupported_media_type(content_type)
        elif content_type == patch.STRATEGIC_MERGE_PATCH:
            document = requests.decode(raw, content_type)
            if not isinstance(document, dict):
                raise errors.bad_request("a strategic merge patch must be a JSON object")

            def change(target: dict[str, Any]) -> dict[str, Any]:
                return patch.strategic_merge_patch(info, target, document)
        elif content_type == patch.APPLY_PATCH:
            return await self.apply(request, info, path, opts, raw)
        else:
            raise errors.unsupported_media_type(content_type)

        if path.subresource == "scale":

            def compute(current: dict[str, Any]) -> dict[str, Any]:
                scale = change(subresources.to_scale(current, info))
                if isinstance(scale, dict):
                    check_typed(apps_kinds.Scale, "Scale", "v1", "autoscaling", scale)
                return subresources.apply_scale(info, current, scale)
        else:

            def compute(current: dict[str, Any]) -> dict[str, Any]:
                # A patch may rewrite `kind` or `apiVersion`; the result is still
                # decoded as the URL's kind, so another kind is refused, never stored.
                result = change(current)
                if isinstance(result, dict):
                    requests.check_kind(info, result)
                return result

        updated = await self._reg(info).update(
            info, path.namespace, path.name, compute, opts, subresource=path.subresource
        )
        if path.subresource == "scale":
            return responses.send(subresources.to_scale(updated, info), warnings=opts.warnings)
        return responses.send(updated, warnings=opts.warnings)

    async def apply(
        self,
        request: Request,
        info: ResourceInfo,
        path: ResourcePath,
        opts: WriteOptions,
        raw: bytes,
    ) -> Response:
        """Server-side apply: update the object, or create it when it is absent."""
        if not request.query_params.get("fieldManager"):
            raise errors.ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
            )
        if path.subresource:
            raise errors.method_not_allowed("PATCH", request.url.path)
        config = requests.decode(raw, "application/yaml")
        if not isinstance(config, dict):
            raise errors.bad_request("an apply patch must be an object")
        requests.check_kind(info, config)
        check_decoded(info, config)
        force = request.query_params.get("force", "").lower() == "true"
        opts.applying = True
        manager = opts.field_manager

        def compute(current: dict[str, Any]) -> dict[str, Any]:
            return managed_fields.apply(info, current, config, manager, force=force)

        try:
            updated = await self._reg(info).update(info, path.namespace, path.name, compute, opts)
        except errors.ApiError as e:
            if e.code != 404:
                raise
            body = managed_fields.apply(info, None, config, manager, force=force)
            body.setdefault("metadata", {})["name"] = path.name
            created = await self._reg(info).create(info, path.namespace, body, opts)
            return responses.send(created, 201, warnings=opts.warnings)
        return responses.send(updated, warnings=opts.warnings)

    async def delete(self, request: Request, info: ResourceInfo, path: ResourcePath) -> Response:
        opts = await requests.delete_options(request)
        obj, gone = await self._reg(info).delete(info, path.namespace, path.name, opts)
        if gone and info.kind not in RETURNS_DELETED_OBJECT:
            return responses.send(responses.success_status(info, obj))
        return responses.send(obj)

    async def delete_collection(
        self, request: Request, info: ResourceInfo, path: ResourcePath
    ) -> Response:
        list_opts = requests.list_options(info, request)
        list_opts.limit, list_opts.continue_token = 0, ""
        opts = await requests.delete_options(request)
        deleted = await self._reg(info).delete_collection(info, path.namespace, list_opts, opts)
        revision = await self.registry.store.revision()
        return responses.send(responses.list_object(info, deleted, revision))
