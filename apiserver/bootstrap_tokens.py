"""Bootstrap tokens and what they may do, as Kubernetes' bootstrap authenticator defines them.

A bearer token `<id>.<secret>` is a bootstrap token when kube-system holds the
Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` with
that `token-secret`, `usage-bootstrap-authentication: "true"` and an
`expiration` still in the future. Its user is `system:bootstrap:<id>`, in the
groups `system:bootstrappers`, the Secret's `auth-extra-groups` and
`system:authenticated`.

The token alone can do nothing but join a node: create and read
CertificateSigningRequests (what kubeadm's `system:node-bootstrapper` role
grants), plus discovery. That is enforced here, before any other
authorization. Anyone, signed in or not, may GET the discovery document
`kube-public/cluster-info` (kubeadm binds that to `system:anonymous`).
"""

from __future__ import annotations

import base64
import datetime
import hmac
import re
from typing import Any

from api import resources

from . import errors
from .auth import UserInfo
from .registry import Registry

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
BOOTSTRAPPERS = "system:bootstrappers"
DISCOVERY = frozenset(
    {
        "/api",
        "/apis",
        "/version",
        "/healthz",
        "/readyz",
        "/livez",
        CLUSTER_INFO,
        "/apis/certificates.k8s.io",
        "/apis/certificates.k8s.io/v1",
    }
)


def user_for(secret: dict[str, Any], token: str, now: datetime.datetime) -> UserInfo | None:
    """The bootstrap user the token stands for, if the Secret admits it. Pure."""
    m = TOKEN_RE.match(token)
    if not m or secret.get("type") != SECRET_TYPE:
        return None
    try:
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    except (ValueError, UnicodeDecodeError):
        return None
    token_id, token_secret = m.groups()
    if data.get("token-id", token_id) != token_id:
        return None
    if not hmac.compare_digest(data.get("token-secret", "").encode(), token_secret.encode()):
        return None
    if data.get("usage-bootstrap-authentication") != "true":
        return None
    expiration = data.get("expiration")
    if expiration:
        try:
            when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when <= now:
            return None
    extra = [
        g.strip()
        for g in data.get("auth-extra-groups", "").split(",")
        if g.strip().startswith("system:bootstrappers:")
    ]
    return UserInfo(
        f"system:bootstrap:{token_id}", "", (BOOTSTRAPPERS, *extra, "system:authenticated")
    )


def is_bootstrapper(user: UserInfo | None) -> bool:
    return user is not None and BOOTSTRAPPERS in user.groups


def bootstrapper_may(method: str, path: str) -> bool:
    """What a bootstrap token may do: discovery, and create/get/list/watch its CSRs. Pure."""
    path = path.rstrip("/")
    if method == "GET":
        return path in DISCOVERY or path == CSR_PATH or path.startswith(CSR_PATH + "/")
    return method == "POST" and path == CSR_PATH


def anonymous_may(method: str, path: str) -> bool:
    return method == "GET" and path.rstrip("/") == CLUSTER_INFO


class BootstrapTokens:
    """Looks bootstrap tokens up in kube-system's Secrets (the token is checked on every request,
    so a deleted or expired token stops working at once)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.secrets = resources.lookup("", "v1", "secrets")

    async def authenticate(self, authorization: str) -> UserInfo | None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        m = TOKEN_RE.match(token)
        if scheme.lower() != "bearer" or not m or self.secrets is None:
            return None
        try:
            stored = await self.registry.get(
                self.secrets, "kube-system", f"bootstrap-token-{m.group(1)}"
            )
        except errors.ApiError:
            return None
        return user_for(stored.obj, token, datetime.datetime.now(datetime.UTC))

    @staticmethod
    def refusal(user: UserInfo, method: str, path: str) -> errors.ApiError:
        return errors.ApiError(
            403,
            "Forbidden",
            f'{method} {path} is forbidden: User "{user.name}" may only request a node '
            "certificate (certificatesigningrequests)",
        )
