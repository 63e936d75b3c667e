"""TokenRequest: `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`.

What `kubectl create token <sa>` and the kubelet (for a pod's projected token)
call. The caller needs `create` on `serviceaccounts/token` (the Authorize
filter checked it); the account must exist; a `boundObjectRef` to a Pod ties
the token's life to that pod. `expirationSeconds` defaults to 3600 and may not
be under 600, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.resources import lookup

from .. import errors, paths, requests, responses
from ..registry import Registry
from ..serviceaccounts import (
    DEFAULT_EXPIRATION,
    MAX_EXPIRATION,
    MIN_EXPIRATION,
    TokenIssuer,
    expiry_timestamp,
)


def _invalid(field: str, value: Any, why: str) -> errors.ApiError:
    return errors.ApiError(
        422,
        "Invalid",
        f'TokenRequest.authentication.k8s.io "" is invalid: {field}: Invalid value: '
        f"{value!r}: {why}".replace("'", '"'),
        details={
            "kind": "TokenRequest",
            "group": "authentication.k8s.io",
            "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}],
        },
    )


class TokenRequests:
    def __init__(self, app: ASGIApp, registry: Registry, issuer: TokenIssuer) -> None:
        self.app = app
        self.registry = registry
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parsed = paths.parse(scope["path"]) if scope["type"] == "http" else None
        if (
            parsed is None
            or parsed.group != ""
            or parsed.resource != "serviceaccounts"
            or parsed.subresource != "token"
            or not parsed.name
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if request.method != "POST":
                raise errors.method_not_allowed(request.method, request.url.path)
            body = await requests.object_body(request)
            answer = await self.issue(parsed.namespace, parsed.name, body)
            response = responses.send(answer, 201)
        except errors.ApiError as e:
            response = responses.send_error(e)
        await response(scope, receive, send)

    async def issue(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        sa_info = lookup("", "v1", "serviceaccounts")
        pod_info = lookup("", "v1", "pods")
        assert sa_info is not None and pod_info is not None
        account = (await self.registry.get(sa_info, namespace, name)).obj
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        expiration = spec.get("expirationSeconds") or DEFAULT_EXPIRATION
        if not isinstance(expiration, int) or expiration < MIN_EXPIRATION:
            raise _invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            )
        if expiration > MAX_EXPIRATION:
            raise _invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            )
        audiences = [str(a) for a in spec.get("audiences") or []] or None
        pod = None
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict) and ref:
            if ref.get("kind") != "Pod":
                raise _invalid(
                    "spec.boundObjectRef.kind", ref.get("kind"), 'supported values: "Pod"'
                )
            pod = (await self.registry.get(pod_info, namespace, str(ref.get("name", "")))).obj
            if ref.get("uid") and ref["uid"] != pod["metadata"].get("uid"):
                raise errors.conflict(
                    "pods",
                    "",
                    str(ref.get("name")),
                    "the UID in the bound object reference "
                    f"({ref['uid']}) does not match the UID in record. "
                    "The object might have been deleted and then recreated",
                )
        token, exp = self.issuer.issue(account, audiences=audiences, expiration=expiration, pod=pod)
        out_spec = dict(spec)
        out_spec["expirationSeconds"] = expiration
        out_spec["audiences"] = audiences or list(self.issuer.audiences)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": expiry_timestamp(exp)},
        }
