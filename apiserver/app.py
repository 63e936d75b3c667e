"""The HTTP application: fixed endpoints, discovery, and every resource path.

Two layers wrap each request, as kube-apiserver's filter chain does:
`Authenticate` establishes who is asking (or answers 401) and `Observe`
writes the access-log line and the request metrics. Handlers then raise
`ApiError` for anything that goes wrong, which leaves as a `Status`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import bootstrap_tokens, discovery, errors, metrics, openapi, paths, responses
from .auth import PUBLIC_PATHS, Authenticator, UserInfo
from .bootstrap_tokens import BootstrapTokens
from .handlers import Handlers
from .kubelet_proxy import KubeletConnector, KubeletProxy
from .registry import Registry

access_log = logging.getLogger("skiff.apiserver.access")
log = logging.getLogger("skiff.apiserver")


class Authenticate:
    """Who is asking: a bearer token, a client certificate, or anonymous.

    Anonymous requests reach only the public paths; wrong credentials are
    refused everywhere, as kube-apiserver refuses a bad token even on /healthz.
    """

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, bootstrap: BootstrapTokens | None = None
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.bootstrap = bootstrap  # bootstrap tokens (kube-system Secrets), for joining nodes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        peer = (scope.get("extensions") or {}).get("tls", {}).get("client_cert_der")
        user = self.authenticator.authenticate(authorization, peer)
        if user is None and authorization and self.bootstrap is not None:
            user = await self.bootstrap.authenticate(authorization)
        method = scope.get("method", "GET")
        public = scope["path"] in PUBLIC_PATHS or bootstrap_tokens.anonymous_may(
            method, scope["path"]
        )
        if user is None or (not user.authenticated and not public):
            if scope["type"] == "websocket":
                await _refuse_upgrade(receive, send, errors.unauthorized())
                return
            await responses.send_error(errors.unauthorized())(scope, receive, send)
            return
        if bootstrap_tokens.is_bootstrapper(user) and not bootstrap_tokens.bootstrapper_may(
            method, scope["path"]
        ):
            assert user is not None
            refusal = BootstrapTokens.refusal(user, method, scope["path"])
            if scope["type"] == "websocket":
                await _refuse_upgrade(receive, send, refusal)
            else:
                await responses.send_error(refusal)(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


async def _refuse_upgrade(receive: Receive, send: Send, error: errors.ApiError) -> None:
    """A WebSocket upgrade answered with a plain HTTP error (a Status), not accepted."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": error.code,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    body = json.dumps(error.status()).encode()
    await send({"type": "websocket.http.response.body", "body": body})


class Observe:
    """One access-log line and the request metrics for every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500
        state = scope.setdefault("state", {})

        async def send_observed(message: Message) -> None:
            nonlocal code
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                code = message["status"]
            elif message["type"] == "websocket.accept":
                code = 101  # exec, attach, port-forward: logged when the stream ends
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = time.perf_counter() - start
            verb = state.get("verb") or scope.get("method", "GET").lower()
            labels = [
                verb.upper() if verb == "watch" else verb,
                state.get("group", ""),
                state.get("version", ""),
                state.get("resource", ""),
                state.get("subresource", ""),
                state.get("scope", ""),
            ]
            metrics.REQUESTS.labels(*labels, str(code)).inc()
            if verb != "watch":
                metrics.LATENCY.labels(*labels).observe(elapsed)
            user: UserInfo | None = state.get("user")
            access_log.info(
                json.dumps(
                    {
                        "ts": round(time.time(), 3),
                        "verb": verb,
                        "method": scope.get("method", "GET"),
                        "path": scope["path"],
                        "query": scope.get("query_string", b"").decode("latin-1"),
                        "code": code,
                        "ms": round(elapsed * 1000, 2),
                        "user": user.name if user else "",
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                    separators=(",", ":"),
                )
            )


def build_app(
    registry: Registry,
    authenticator: Authenticator,
    *,
    server_address: str,
    ready: Callable[[], Awaitable[bool]],
    kubelets: KubeletConnector | None = None,
) -> ASGIApp:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="skiff apiserver")
    handlers = Handlers(registry)

    def document(doc: dict[str, Any] | None) -> Response:
        if doc is None:
            raise errors.path_not_found()
        return responses.send(doc)

    @app.exception_handler(errors.ApiError)
    async def api_error(_: Request, exc: errors.ApiError) -> Response:
        return responses.send_error(exc)

    @app.exception_handler(404)
    async def not_found(_: Request, __: Exception) -> Response:
        return responses.send_error(errors.path_not_found())

    @app.exception_handler(405)
    async def not_allowed(request: Request, __: Exception) -> Response:
        return responses.send_error(errors.method_not_allowed(request.method, request.url.path))

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> Response:
        log.exception("request failed", exc_info=exc)
        return responses.send_error(errors.internal("an internal error occurred; see the log"))

    @app.get("/livez")
    async def livez() -> Response:
        return PlainTextResponse("ok")

    @app.get("/healthz")
    @app.get("/readyz")
    async def readyz() -> Response:
        if await ready():
            return PlainTextResponse("ok")
        return PlainTextResponse("[-]etcd failed: etcd is not answering\nreadyz check failed", 503)

    @app.get("/version")
    async def version() -> Response:
        return responses.send(discovery.version_info())

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/api")
    async def core_versions() -> Response:
        return responses.send(discovery.api_versions(server_address))

    @app.get("/apis")
    async def groups() -> Response:
        return responses.send(discovery.api_group_list())

    @app.get("/openapi/v2")
    async def openapi_v2() -> Response:
        return responses.send(openapi.openapi_v2())

    @app.get("/openapi/v3")
    async def openapi_v3() -> Response:
        return responses.send(openapi.openapi_v3_index())

    @app.get("/openapi/v3/api/{version}")
    async def openapi_v3_core(version: str) -> Response:
        return document(openapi.openapi_v3_document("", version))

    @app.get("/openapi/v3/apis/{group}/{version}")
    async def openapi_v3_group(group: str, version: str) -> Response:
        return document(openapi.openapi_v3_document(group, version))

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def discovery_or_not_found(request: Request, rest: str) -> Response:
        return discovery_document(request.url.path)

    def discovery_document(path: str) -> Response:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "api":
            return document(discovery.resource_list("", parts[1]))
        if len(parts) == 2 and parts[0] == "apis":
            return document(discovery.api_group(parts[1]))
        if len(parts) == 3 and parts[0] == "apis":
            return document(discovery.resource_list(parts[1], parts[2]))
        raise errors.path_not_found()

    inner: ASGIApp = Resources(app, handlers)
    if kubelets is not None:
        # pods/log|exec|attach|portforward, nodes/proxy and metrics.k8s.io: the kubelets'.
        inner = KubeletProxy(inner, registry, kubelets)
    return Observe(Authenticate(inner, authenticator, BootstrapTokens(registry)))


class Resources:
    """Resource paths go straight to the handlers; everything else to FastAPI.

    Resource requests are nearly all of an apiserver's traffic, and FastAPI's
    generic middleware stack (exception wrappers, body limits, dependency
    scopes) roughly doubles their cost without adding anything they use.
    """

    def __init__(self, app: ASGIApp, handlers: Handlers) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parsed = paths.parse(scope["path"]) if scope["type"] == "http" else None
        if parsed is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.handlers.handle(request, parsed)
        except errors.ApiError as e:
            response = responses.send_error(e)
        except Exception as e:
            log.exception("request failed", exc_info=e)
            response = responses.send_error(
                errors.internal("an internal error occurred; see the log")
            )
        await response(scope, receive, send)
