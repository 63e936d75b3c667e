"""Who may use the kubelet's API: authenticated by certificate, authorized by the apiserver.

As the kubelet does with `--authorization-mode=Webhook`, each request is
mapped to attributes on the node object — `nodes/stats`, `nodes/metrics`,
`nodes/log`, `nodes/spec`, `nodes/healthz`, `nodes/pods`, else `nodes/proxy`;
the verb from the method (GET → get, POST → create, ...) — and put to the
apiserver as a SubjectAccessReview. Answers are cached (allowed 5 minutes,
denied 30 seconds, the kubelet's defaults) so that a log stream or a stats
scrape does not ask every time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

METHOD_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
SUBRESOURCES = {
    "stats": "stats",
    "metrics": "metrics",
    "logs": "log",
    "spec": "spec",
    "healthz": "healthz",
    "pods": "pods",
    "checkpoint": "checkpoint",
    "configz": "configz",
}
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0


@dataclass(frozen=True)
class Caller:
    name: str
    groups: tuple[str, ...]


def caller_of(der: bytes) -> Caller:
    """The user a client certificate names: CN, and each O as a group."""
    cert = x509.load_der_x509_certificate(der)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Caller(str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs))


def attributes(method: str, path: str, websocket: bool = False) -> tuple[str, str]:
    """(verb, subresource of nodes) for a request to the kubelet (pure)."""
    first = next((p for p in path.split("/") if p), "")
    verb = METHOD_VERBS.get(method.upper(), method.lower())
    if websocket and first in ("exec", "attach", "portForward", "run"):
        verb = "create"  # a stream into the node is a create, whatever the upgrade's method
    return verb, SUBRESOURCES.get(first, "proxy")


def review(node: str, caller: Caller, verb: str, subresource: str) -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": caller.name,
            "groups": list(caller.groups),
            "resourceAttributes": {
                "verb": verb,
                "resource": "nodes",
                "subresource": subresource,
                "name": node,
                "version": "v1",
            },
        },
    }


class WebhookAuthorizer:
    """Asks the apiserver through `post(review) -> answered review`, with a cache."""

    def __init__(
        self,
        node: str,
        post: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.post = post
        self.clock = clock
        self._cache: dict[tuple[Caller, str, str], tuple[bool, float]] = {}

    async def allowed(self, caller: Caller, verb: str, subresource: str) -> tuple[bool, str]:
        key = (caller, verb, subresource)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0], ""
        answer = await self.post(review(self.node, caller, verb, subresource))
        status = answer.get("status") or {}
        ok = bool(status.get("allowed"))
        self._cache[key] = (ok, now + (ALLOWED_TTL if ok else DENIED_TTL))
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
        return ok, str(status.get("reason") or "")


def forbidden_text(caller: Caller, verb: str, subresource: str, node: str) -> str:
    """The kubelet's own words for a refusal."""
    return f"Forbidden (user={caller.name}, verb={verb}, resource=nodes, subresource={subresource})"
