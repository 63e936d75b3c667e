"""The authorization filter: impersonation, then may this user do this request.

Runs after authentication, as kube-apiserver's WithImpersonation and
WithAuthorization filters do. `Impersonate-User`, `Impersonate-Group`,
`Impersonate-Uid` and `Impersonate-Extra-*` (kubectl `--as`, `--as-group`,
`--as-uid`) each need the `impersonate` verb on users, groups, uids or
serviceaccounts; the request then runs as the impersonated user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from .. import errors, responses
from ..auth import ANONYMOUS, UserInfo
from .attributes import Attributes, from_request
from .authorizer import CURRENT, Authorizer, RequestContext, forbidden
from .rbac import SERVICE_ACCOUNT_PREFIX

log = logging.getLogger("skiff.apiserver.authz")


def impersonated(
    user: UserInfo,
    headers: list[tuple[bytes, bytes]],
    allowed: Callable[[UserInfo, Attributes], bool],
) -> UserInfo:
    """The user to act as, after checking `impersonate` on each thing asked for.

    Raises the 403 Kubernetes gives when one is not allowed.
    """
    name = ""
    uid = ""
    groups: list[str] = []
    extras: list[tuple[str, str]] = []
    for key, value in headers:
        k = key.decode("latin-1").lower()
        v = value.decode("latin-1")
        if k == "impersonate-user":
            name = v
        elif k == "impersonate-group":
            groups.append(v)
        elif k == "impersonate-uid":
            uid = v
        elif k.startswith("impersonate-extra-"):
            extras.append((k[len("impersonate-extra-") :], v))
    if not name:
        if groups or uid or extras:
            raise errors.ApiError(
                500,
                "InternalError",
                "Internal error occurred: requested "
                + ("groups" if groups else "uid" if uid else "extra")
                + " without impersonating a user",
            )
        return user
    checks: list[Attributes] = []
    if name.startswith(SERVICE_ACCOUNT_PREFIX) and name.count(":") == 3:
        ns, sa = name[len(SERVICE_ACCOUNT_PREFIX) :].split(":", 1)
        checks.append(Attributes("impersonate", resource="serviceaccounts", namespace=ns, name=sa))
    else:
        checks.append(Attributes("impersonate", resource="users", name=name))
    for g in groups:
        checks.append(Attributes("impersonate", resource="groups", name=g))
    if uid:
        checks.append(
            Attributes("impersonate", api_group="authentication.k8s.io", resource="uids", name=uid)
        )
    for key, value in extras:
        checks.append(
            Attributes(
                "impersonate",
                api_group="authentication.k8s.io",
                resource="userextras",
                subresource=key,
                name=value,
            )
        )
    for attrs in checks:
        if not allowed(user, attrs):
            raise forbidden(user, attrs)
    if name.startswith(SERVICE_ACCOUNT_PREFIX) and not groups:
        ns = name[len(SERVICE_ACCOUNT_PREFIX) :].split(":", 1)[0]
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    if name == ANONYMOUS:
        groups.append("system:unauthenticated")
    elif "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return UserInfo(name, uid, tuple(groups))


class Authorize:
    def __init__(
        self,
        app: ASGIApp,
        authorizer: Authorizer,
        catch_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.authorizer = authorizer
        self.catch_up = catch_up

    def _allowed(self, user: UserInfo, attrs: Attributes) -> bool:
        return self.authorizer.authorize(user, attrs)[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        user: UserInfo | None = state.get("user")
        if user is None:  # authentication did not run: nothing to decide on
            await self.app(scope, receive, send)
            return
        try:
            user = impersonated(user, scope["headers"], self._allowed)
            state["user"] = user
            method = scope.get("method", "GET")
            query = scope.get("query_string", b"").decode("latin-1")
            attrs = from_request(method, scope["path"], query)
            allowed, reason = self.authorizer.authorize(user, attrs)
            if not allowed and self.catch_up is not None:
                await self.catch_up()  # a grant written a moment ago, maybe via another worker
                allowed, reason = self.authorizer.authorize(user, attrs)
            state["authz_decision"] = "allow" if allowed else "forbid"
            state["authz_reason"] = reason
            if not allowed:
                raise forbidden(user, attrs, reason)
        except errors.ApiError as e:
            await _refuse(scope, receive, send, e)
            return
        except Exception as e:  # never a bare 500 page: a Status, and the log says why
            log.exception("authorization failed", exc_info=e)
            await _refuse(
                scope, receive, send, errors.internal("authorization failed; see the log")
            )
            return
        state["user"] = user
        state["authz_attributes"] = attrs
        token = CURRENT.set(RequestContext(user, self.authorizer))
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT.reset(token)


async def _refuse(scope: Scope, receive: Receive, send: Send, error: errors.ApiError) -> None:
    if scope["type"] == "http":
        await responses.send_error(error)(scope, receive, send)
        return
    if (await receive())["type"] != "websocket.connect":
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": error.code,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send(
        {"type": "websocket.http.response.body", "body": json.dumps(error.status()).encode()}
    )
