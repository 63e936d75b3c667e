"""The review kinds: questions put to the authorizer and authenticator, never stored.

    POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews   kubectl auth can-i
    POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews    kubectl auth can-i --list
    POST /apis/authorization.k8s.io/v1/subjectaccessreviews       may user X do Y?
    POST /apis/authorization.k8s.io/v1/namespaces/N/localsubjectaccessreviews
    POST /apis/authentication.k8s.io/v1/selfsubjectreviews        kubectl auth whoami
    POST /apis/authentication.k8s.io/v1/tokenreviews              whose token is this?

Each answers 201 with the request and its `status` filled in, as kube-apiserver does.
Whether the caller may ask at all (`create` on the review resource) was
decided by the Authorize filter before this runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.resources import REVIEW_GROUPS

from .. import errors, paths, requests, responses
from ..auth import UserInfo
from .attributes import Attributes
from .authorizer import Authorizer

TokenAuthenticator = Callable[[str, list[str]], tuple[UserInfo, list[str]] | None]


def attributes_of(spec: dict[str, Any]) -> Attributes:
    res = spec.get("resourceAttributes")
    if isinstance(res, dict):
        return Attributes(
            verb=str(res.get("verb") or ""),
            api_group=str(res.get("group") or ""),
            api_version=str(res.get("version") or ""),
            resource=str(res.get("resource") or ""),
            subresource=str(res.get("subresource") or ""),
            namespace=str(res.get("namespace") or ""),
            name=str(res.get("name") or ""),
        )
    non = spec.get("nonResourceAttributes")
    if isinstance(non, dict):
        return Attributes(
            verb=str(non.get("verb") or ""), resource_request=False, path=str(non.get("path") or "")
        )
    raise errors.invalid(
        "SubjectAccessReview",
        "authorization.k8s.io",
        "",
        [],
    )


def user_info(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return info


def rules_status(rules: list[dict[str, Any]]) -> dict[str, Any]:
    """SelfSubjectRulesReview's status: resource and non-resource rules apart."""
    resource_rules, non_resource_rules = [], []
    for r in rules:
        if r.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])}
            )
        if r.get("resources"):
            entry: dict[str, Any] = {
                "verbs": list(r.get("verbs") or []),
                "apiGroups": list(r.get("apiGroups") or []),
                "resources": list(r.get("resources") or []),
            }
            if r.get("resourceNames"):
                entry["resourceNames"] = list(r["resourceNames"])
            resource_rules.append(entry)
    return {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }


class Reviews:
    def __init__(
        self, app: ASGIApp, authorizer: Authorizer, tokens: TokenAuthenticator | None = None
    ) -> None:
        self.app = app
        self.authorizer = authorizer
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parsed = paths.parse(scope["path"]) if scope["type"] == "http" else None
        if parsed is None or parsed.group not in REVIEW_GROUPS or parsed.name:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if request.method != "POST":
                raise errors.method_not_allowed(request.method, request.url.path)
            body = await requests.object_body(request)
            user: UserInfo = scope["state"]["user"]
            answer = self.answer(parsed.resource, parsed.namespace, body, user)
            response = responses.send(answer, 201)
        except errors.ApiError as e:
            response = responses.send_error(e)
        await response(scope, receive, send)

    def answer(
        self, resource: str, namespace: str, body: dict[str, Any], user: UserInfo
    ) -> dict[str, Any]:
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        out = {k: v for k, v in body.items() if k in ("apiVersion", "kind", "metadata", "spec")}
        out.setdefault("metadata", {})
        if resource in (
            "selfsubjectaccessreviews",
            "subjectaccessreviews",
            "localsubjectaccessreviews",
        ):
            if resource == "selfsubjectaccessreviews":
                subject = user
            else:
                name = str(spec.get("user") or "")
                groups = tuple(str(g) for g in spec.get("groups") or [])
                if not name and not groups:
                    raise errors.ApiError(
                        422,
                        "Invalid",
                        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: '
                        'Invalid value: "": at least one of user or group must be specified',
                    )
                subject = UserInfo(name, str(spec.get("uid") or ""), groups)
            attrs = attributes_of(spec)
            if resource == "localsubjectaccessreviews" and attrs.namespace != namespace:
                raise errors.ApiError(
                    422,
                    "Invalid",
                    f'LocalSubjectAccessReview.authorization.k8s.io "" is invalid: '
                    f'spec.resourceAttributes.namespace: Invalid value: "{attrs.namespace}": '
                    "must match metadata.namespace",
                )
            allowed, reason = self.authorizer.authorize(subject, attrs)
            status: dict[str, Any] = {"allowed": allowed}
            if reason:
                status["reason"] = reason
            out["status"] = status
        elif resource == "selfsubjectrulesreviews":
            ns = str(spec.get("namespace") or "")
            out["status"] = rules_status(self.authorizer.rules(user, ns))
        elif resource == "selfsubjectreviews":
            out = {
                "kind": "SelfSubjectReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "status": {"userInfo": user_info(user)},
            }
        elif resource == "tokenreviews":
            token = str(spec.get("token") or "")
            audiences = [str(a) for a in spec.get("audiences") or []]
            found = self.tokens(token, audiences) if self.tokens and token else None
            if found is None:
                out["status"] = {"authenticated": False, "error": "invalid bearer token"}
            else:
                who, auds = found
                out["status"] = {"authenticated": True, "user": user_info(who), "audiences": auds}
        else:
            raise errors.path_not_found()
        return out
