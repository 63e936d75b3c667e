"""RBAC storage rules: validation of roles and bindings, and escalation prevention.

Kubernetes' RBAC registry refuses a Role or ClusterRole holding rules its
author does not hold (unless they may `escalate` roles there), and a binding
to a role whose rules its author does not hold (unless they may `bind` that
role). Members of `system:masters`, and the apiserver itself, may do both.
The check wraps the registry for the four RBAC kinds, so every write path —
create, update, patch, apply — passes through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.errors import FieldError
from api.resources import ResourceInfo

from .. import errors
from ..registry import Registry, WriteOptions
from .attributes import Attributes
from .authorizer import CURRENT, MASTERS, RequestContext
from .rbac import GROUP, Policy, describe_rule, role_rules, uncovered


def well_formed(info: ResourceInfo, obj: dict[str, Any]) -> bool:
    """The shape the checks below read; anything else the schema check refuses."""

    def dicts(value: Any) -> bool:  # null entries are reported by validate()
        return isinstance(value, list) and all(isinstance(v, dict | None) for v in value)

    def strs(value: Any) -> bool:
        return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    if info.kind in ("Role", "ClusterRole"):
        rules = obj.get("rules") or []
        return dicts(rules) and all(
            strs(r.get(k))
            for r in rules
            if r is not None
            for k in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
        )
    return isinstance(obj.get("roleRef") or {}, dict) and dicts(obj.get("subjects") or [])


def validate(info: ResourceInfo, obj: dict[str, Any]) -> list[FieldError]:
    problems: list[FieldError] = []
    if info.kind in ("Role", "ClusterRole"):
        for i, r in enumerate(obj.get("rules") or []):
            if r is None:
                problems.append(
                    FieldError(f"rules[{i}]", "FieldValueRequired", "must be a PolicyRule")
                )
                continue
            if not r.get("verbs"):
                problems.append(
                    FieldError(
                        f"rules[{i}].verbs",
                        "FieldValueRequired",
                        "verbs must contain at least one value",
                    )
                )
            if r.get("nonResourceURLs"):
                if info.kind == "Role":
                    problems.append(
                        FieldError(
                            f"rules[{i}].nonResourceURLs",
                            "FieldValueInvalid",
                            "namespaced rules cannot apply to non-resource URLs",
                            r["nonResourceURLs"],
                        )
                    )
                if r.get("resources") or r.get("apiGroups"):
                    problems.append(
                        FieldError(
                            f"rules[{i}].nonResourceURLs",
                            "FieldValueInvalid",
                            "rules cannot apply to both regular resources and non-resource URLs",
                            r["nonResourceURLs"],
                        )
                    )
            elif not r.get("resources"):
                problems.append(
                    FieldError(
                        f"rules[{i}].resources",
                        "FieldValueRequired",
                        "resource rules must supply at least one resource",
                    )
                )
            elif r.get("apiGroups") is None:
                problems.append(
                    FieldError(
                        f"rules[{i}].apiGroups",
                        "FieldValueRequired",
                        "resource rules must supply at least one api group",
                    )
                )
    else:
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup") != GROUP:
            problems.append(
                FieldError(
                    "roleRef.apiGroup",
                    "FieldValueNotSupported",
                    f'supported values: "{GROUP}"',
                    ref.get("apiGroup", ""),
                )
            )
        allowed_kinds = ("Role", "ClusterRole") if info.kind == "RoleBinding" else ("ClusterRole",)
        if ref.get("kind") not in allowed_kinds:
            problems.append(
                FieldError(
                    "roleRef.kind",
                    "FieldValueNotSupported",
                    "supported values: " + ", ".join(f'"{k}"' for k in allowed_kinds),
                    ref.get("kind", ""),
                )
            )
        if not ref.get("name"):
            problems.append(FieldError("roleRef.name", "FieldValueRequired", "Required value"))
        for i, s in enumerate(obj.get("subjects") or []):
            if s is None:
                problems.append(
                    FieldError(f"subjects[{i}]", "FieldValueRequired", "must be a Subject")
                )
                continue
            if s.get("kind") not in ("User", "Group", "ServiceAccount"):
                problems.append(
                    FieldError(
                        f"subjects[{i}].kind",
                        "FieldValueNotSupported",
                        'supported values: "ServiceAccount", "User", "Group"',
                        s.get("kind", ""),
                    )
                )
            if not s.get("name"):
                problems.append(
                    FieldError(f"subjects[{i}].name", "FieldValueRequired", "Required value")
                )
            if (
                s.get("kind") == "ServiceAccount"
                and info.kind == "ClusterRoleBinding"
                and not s.get("namespace")
            ):
                problems.append(
                    FieldError(f"subjects[{i}].namespace", "FieldValueRequired", "Required value")
                )
    return problems


class EscalationGuard:
    """A registry for RBAC kinds that validates and refuses escalation."""

    def __init__(self, registry: Registry, policy: Policy) -> None:
        self.registry = registry
        self.policy = policy

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)

    def check(
        self, info: ResourceInfo, namespace: str, obj: dict[str, Any], old: dict | None
    ) -> None:
        meta = obj.get("metadata")
        name = str((meta if isinstance(meta, dict) else {}).get("name") or "")
        if not well_formed(info, obj):
            return  # the registry's schema check answers with what is wrong
        problems = validate(info, obj)
        if (
            old is not None
            and info.kind.endswith("Binding")
            and obj.get("roleRef") != old.get("roleRef")
        ):
            problems.append(
                FieldError(
                    "roleRef", "FieldValueInvalid", "cannot change roleRef", obj.get("roleRef")
                )
            )
        if problems:
            raise errors.invalid(info.kind, info.group, name, problems)
        ctx = CURRENT.get()
        if ctx is None or MASTERS in ctx.user.groups:
            return  # the apiserver itself, or a cluster admin
        if info.kind in ("Role", "ClusterRole"):
            may = Attributes(
                "escalate", api_group=GROUP, resource=info.plural, namespace=namespace, name=name
            )
            if ctx.authorizer.authorize(ctx.user, may)[0]:
                return
            wanted = list(obj.get("rules") or [])
            if info.kind == "ClusterRole" and obj.get("aggregationRule"):
                # An aggregationRule can gather anything: it needs full authority.
                full = [
                    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                    {"verbs": ["*"], "nonResourceURLs": ["*"]},
                ]
                if uncovered(ctx.authorizer.rules(ctx.user, ""), full):
                    raise errors.forbidden(
                        info.plural,
                        info.group,
                        name,
                        "must have cluster-admin privileges to use the aggregationRule",
                    )
        else:
            ref = obj.get("roleRef") or {}
            resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            role_ns = namespace if resource == "roles" else ""
            may = Attributes(
                "bind",
                api_group=GROUP,
                resource=resource,
                namespace=namespace,
                name=str(ref.get("name", "")),
            )
            if ctx.authorizer.authorize(ctx.user, may)[0]:
                return
            wanted = role_rules(self.policy, ref, role_ns or namespace)
        held = ctx.authorizer.rules(ctx.user, namespace)
        missing = uncovered(held, wanted)
        if missing:
            raise refused(info, name, ctx, missing)

    async def create(
        self, info: ResourceInfo, namespace: str, obj: dict[str, Any], opts: WriteOptions
    ) -> dict:
        self.check(info, namespace, obj, None)
        return await self.registry.create(info, namespace, obj, opts)

    async def update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], dict[str, Any]],
        opts: WriteOptions,
        **kw: Any,
    ) -> dict:
        def checked(current: dict[str, Any]) -> dict[str, Any]:
            desired = compute(current)
            self.check(info, namespace, desired, current)
            return desired

        return await self.registry.update(info, namespace, name, checked, opts, **kw)


def refused(
    info: ResourceInfo, name: str, ctx: RequestContext, missing: list[dict]
) -> errors.ApiError:
    groups = " ".join(f'"{g}"' for g in ctx.user.groups)
    rules = "\n".join(describe_rule(r) for r in missing)
    return errors.forbidden(
        info.plural,
        info.group,
        name,
        f'user "{ctx.user.name}" (groups=[{groups}]) is attempting to grant RBAC permissions '
        f"not currently held:\n{rules}",
    )
