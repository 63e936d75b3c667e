"""The authorizer chain and the words of a refusal.

Order, as kube-apiserver's `--authorization-mode=Node,RBAC` plus its
privileged-group shortcut: `system:masters` is allowed everything; the Node
authorizer has the first word on requests from kubelets; RBAC decides the rest.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any, Protocol

from .. import errors
from ..auth import UserInfo
from .attributes import Attributes
from .rbac import RBACAuthorizer

MASTERS = "system:masters"
ALLOW, DENY, NO_OPINION = "allow", "deny", "no-opinion"


class NodeAuthorizerLike(Protocol):
    def decide(self, user: UserInfo, attrs: Attributes) -> tuple[str, str]: ...


@dataclass
class Authorizer:
    rbac: RBACAuthorizer
    node: NodeAuthorizerLike | None = None

    def authorize(self, user: UserInfo, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason is worded for a 403 or a review's status."""
        if MASTERS in user.groups:
            return True, ""
        if self.node is not None:
            decision, reason = self.node.decide(user, attrs)
            if decision == ALLOW:
                return True, reason
            if decision == DENY:
                return False, reason
        return self.rbac.authorize(user, attrs)

    def rules(self, user: UserInfo, namespace: str) -> list[dict[str, Any]]:
        return self.rbac.rules(user, namespace)


@dataclass(frozen=True)
class RequestContext:
    user: UserInfo
    authorizer: Authorizer


# Who is asking, for code below the HTTP layer (escalation checks in storage):
# set by the Authorize filter for the task serving the request.
CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "skiff_authz_request", default=None
)


def forbidden_message(user: UserInfo, attrs: Attributes) -> str:
    """`User "x" cannot list resource "pods" in API group "" in the namespace "y"`."""
    if not attrs.resource_request:
        return f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'User "{user.name}" cannot {attrs.verb} resource "{attrs.resource_and_sub}" '
        f'in API group "{attrs.api_group}" {where}'
    )


def forbidden(user: UserInfo, attrs: Attributes, reason: str = "") -> errors.ApiError:
    why = forbidden_message(user, attrs) + (f": {reason}" if reason else "")
    if not attrs.resource_request:
        return errors.ApiError(403, "Forbidden", f"forbidden: {why}", details={})
    return errors.forbidden(attrs.resource, attrs.api_group, attrs.name, why)
