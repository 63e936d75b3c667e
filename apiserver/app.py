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
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import bootstrap_tokens, discovery, errors, metrics, openapi, paths, responses
from .auth import PUBLIC_PATHS, Authenticator, UserInfo
from .authz.filter import Authorize
from .authz.reviews import Reviews
from .authz.setup import Authorization
from .authz.tokens import TokenRequests
from .bootstrap_tokens import BootstrapTokens
from .handlers import Handlers
from .kubelet_proxy import KubeletConnector, KubeletProxy
from .protobuf import openapiv2 as openapiv2_pb
from .registry import Registry
from .storage import CorruptObjectError, StorageError, TooLargeError, UnavailableError

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
            if access_log.isEnabledFor(logging.INFO):  # else do not build it: every request pays
                _log_access(scope, state, verb, code, elapsed)


def _log_access(scope: Scope, state: dict[str, Any], verb: str, code: int, elapsed: float) -> None:
    """The access-log line: one JSON object per request."""
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


def storage_error(e: StorageError) -> errors.ApiError:
    """How a storage failure leaves the API: etcd out of reach is 503 with
    Retry-After (clients such as kubectl retry), a too-large object 413, a
    corrupt stored object 500 naming its key, as kube-apiserver reports it."""
    if isinstance(e, UnavailableError):
        err = errors.service_unavailable(
            f"etcd is not reachable, the request was not served; retry later ({e})"
        )
        err.details = {"retryAfterSeconds": 1}
        err.headers["Retry-After"] = "1"
        return err
    if isinstance(e, TooLargeError):
        return errors.ApiError(
            413, "RequestEntityTooLarge", f"Request entity too large: the object is larger "
            f"than etcd accepts ({e})"
        )  # fmt: skip
    if isinstance(e, CorruptObjectError):
        return errors.internal(str(e))
    return errors.internal(f"storage: {e}")


# The checks kube-apiserver lists; `etcd` is the one that can fail here.
LIVEZ_CHECKS = ("ping", "log", "etcd")
READYZ_CHECKS = ("ping", "log", "etcd", "etcd-readiness")


def health_response(
    name: str, checks: tuple[str, ...], etcd_ok: bool, query: str, check: str = ""
) -> Response:
    """kube-apiserver's /livez and /readyz text: `ok`, or every check on its own
    line (`[+]ping ok`, `[-]etcd failed: reason withheld`) and 500 on failure."""
    excluded = {v for k, v in _pairs(query) if k == "exclude"}
    results = {c: (etcd_ok if c.startswith("etcd") else True) for c in checks}
    if check:
        if check not in results:
            return PlainTextResponse("404 page not found", 404)
        if results[check]:
            return PlainTextResponse("ok")
        return PlainTextResponse(f"internal server error: {check} check failed", 500)
    failed = any(ok is False for c, ok in results.items() if c not in excluded)
    verbose = any(k == "verbose" for k, _ in _pairs(query))
    if not failed and not verbose:
        return PlainTextResponse("ok")
    lines = []
    for c, ok in results.items():
        if c in excluded:
            lines.append(f"[+]{c} excluded: ok")
        else:
            lines.append(f"[+]{c} ok" if ok else f"[-]{c} failed: reason withheld")
    lines.append(f"{name} check failed" if failed else f"{name} check passed")
    return PlainTextResponse("\n".join(lines) + "\n", 500 if failed else 200)


def _pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def build_app(
    registry: Registry,
    authenticator: Authenticator,
    *,
    server_address: str,
    ready: Callable[[], Awaitable[bool]],
    kubelets: KubeletConnector | None = None,
    live: Callable[[], Awaitable[bool]] | None = None,
    authorization: Authorization | None = None,
    audit: Callable[[ASGIApp], ASGIApp] | None = None,
    kinds_caught_up: Callable[[], Awaitable[None]] | None = None,
) -> ASGIApp:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="skiff apiserver")
    guard = authorization.guard if authorization else None
    handlers = Handlers(registry, wrap=guard, kinds_caught_up=kinds_caught_up)

    async def caught_up() -> None:
        if kinds_caught_up is not None:
            await kinds_caught_up()

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
    @app.get("/livez/{check}")
    async def livez(request: Request, check: str = "") -> Response:
        ok = await live() if live is not None else True
        return health_response("livez", LIVEZ_CHECKS, ok, request.url.query, check)

    @app.get("/readyz")
    @app.get("/readyz/{check}")
    async def readyz(request: Request, check: str = "") -> Response:
        return health_response("readyz", READYZ_CHECKS, await ready(), request.url.query, check)

    @app.get("/healthz")
    @app.get("/healthz/{check}")
    async def healthz(request: Request, check: str = "") -> Response:
        return health_response("healthz", LIVEZ_CHECKS, await ready(), request.url.query, check)

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
        await caught_up()  # kubectl's discovery: groups defined through another worker too
        return responses.send(discovery.api_group_list())

    @app.get("/openapi/v2")
    async def openapi_v2(request: Request) -> Response:
        # kubectl asks for gnostic's protobuf form; others get JSON.
        accept = request.headers.get("accept", "")
        if any(t in accept for t in openapiv2_pb.MEDIA_TYPES):
            return Response(openapi.openapi_v2_protobuf(), media_type=openapiv2_pb.MEDIA_TYPE)
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
        try:
            return discovery_document(request.url.path)
        except errors.ApiError as e:
            if e.code != 404 or kinds_caught_up is None:
                raise
        await caught_up()
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
    if authorization is not None and authorization.authorizer is not None:
        # Authorization (authz/): reviews answered, then every request authorized.
        if authorization.issuer is not None:
            inner = TokenRequests(inner, registry, authorization.issuer)
        inner = Reviews(inner, authorization.authorizer, authenticator.review_token)
        inner = Authorize(inner, authorization.authorizer, authorization.catch_up)
    if audit is not None:
        inner = audit(inner)  # audit.py: sees the user, the decision and the answer
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
        except StorageError as e:
            log.warning("storage: %s", e)
            response = responses.send_error(storage_error(e))
        except Exception as e:
            log.exception("request failed", exc_info=e)
            response = responses.send_error(
                errors.internal("an internal error occurred; see the log")
            )
        await response(scope, receive, send)
