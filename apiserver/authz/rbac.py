"""RBAC: Roles hold rules, bindings give a role's rules to subjects.

The pure part — does a rule allow these attributes, which rules does a user
hold, does one set of rules cover another — is what Kubernetes'
`plugin/pkg/auth/authorizer/rbac` and `registry/rbac/validation` do, and what
the unit tests pin down. `RBACAuthorizer` reads Roles and bindings from the
apiserver's own caches of them, so a new binding takes effect as soon as the
cache sees it, as in kube-apiserver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..auth import UserInfo
from .attributes import Attributes

GROUP = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def verb_matches(rule: dict[str, Any], verb: str) -> bool:
    verbs = rule.get("verbs") or []
    return "*" in verbs or verb in verbs


def group_matches(rule: dict[str, Any], group: str) -> bool:
    groups = rule.get("apiGroups") or []
    return "*" in groups or group in groups


def resource_matches(rule: dict[str, Any], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule.get("resources") or []:
        if r == "*" or r == combined:
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def name_matches(rule: dict[str, Any], name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def url_matches(rule: dict[str, Any], path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    if not isinstance(rule, dict):
        return False  # stored garbage grants nothing
    if attrs.resource_request:
        return (
            verb_matches(rule, attrs.verb)
            and group_matches(rule, attrs.api_group)
            and resource_matches(rule, attrs.resource, attrs.subresource)
            and name_matches(rule, attrs.name)
        )
    return verb_matches(rule, attrs.verb) and url_matches(rule, attrs.path)


def subject_matches(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    if not isinstance(subject, dict):
        return False
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


def applies_to(binding: dict[str, Any], user: UserInfo) -> bool:
    namespace = (binding.get("metadata") or {}).get("namespace", "")
    subjects = binding.get("subjects") or []
    if not isinstance(subjects, list):
        return False
    return any(subject_matches(s, user, namespace) for s in subjects)


@dataclass(frozen=True)
class Policy:
    """A snapshot source of RBAC objects: callables so caches can back them."""

    roles: Callable[[str], Iterable[dict[str, Any]]]  # namespace -> Roles in it
    role: Callable[[str, str], dict[str, Any] | None]  # (namespace, name) -> Role
    cluster_role: Callable[[str], dict[str, Any] | None]
    role_bindings: Callable[[str], Iterable[dict[str, Any]]]  # namespace -> RoleBindings
    cluster_role_bindings: Callable[[], Iterable[dict[str, Any]]]
    # Changes whenever any role or binding does; lets the authorizer reuse the
    # rules it resolved for a user (None: resolve every time).
    generation: Callable[[], int] | None = None


def role_rules(policy: Policy, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The rules a roleRef points at (none when the role does not exist)."""
    if not isinstance(ref, dict):
        return []
    kind, name = ref.get("kind"), ref.get("name", "")
    if kind == "ClusterRole":
        role = policy.cluster_role(name)
    elif kind == "Role" and namespace:
        role = policy.role(namespace, name)
    else:
        role = None
    rules = (role or {}).get("rules") or []
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def rules_for(policy: Policy, user: UserInfo, namespace: str) -> Iterator[dict[str, Any]]:
    """Every rule the user holds in `namespace` ("" = cluster-wide only)."""
    for binding in policy.cluster_role_bindings():
        if applies_to(binding, user):
            yield from role_rules(policy, binding.get("roleRef") or {}, "")
    if namespace:
        for binding in policy.role_bindings(namespace):
            if applies_to(binding, user):
                yield from role_rules(policy, binding.get("roleRef") or {}, namespace)


class RBACAuthorizer:
    MEMO_LIMIT = 4096

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._memo: dict[tuple[UserInfo, str], tuple[int, list[dict[str, Any]]]] = {}

    def authorize(self, user: UserInfo, attrs: Attributes) -> tuple[bool, str]:
        namespace = attrs.namespace if attrs.resource_request else ""
        for rule in self.rules(user, namespace):
            if rule_allows(rule, attrs):
                return True, ""
        return False, ""

    def rules(self, user: UserInfo, namespace: str) -> list[dict[str, Any]]:
        """The user's rules in `namespace`, resolved once per change of the policy."""
        if self.policy.generation is None:
            return list(rules_for(self.policy, user, namespace))
        generation = self.policy.generation()
        key = (user, namespace)
        hit = self._memo.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1]
        rules = list(rules_for(self.policy, user, namespace))
        if len(self._memo) >= self.MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = (generation, rules)
        return rules


# -- escalation: does what a user holds cover what they grant? ---------------


def breakdown(rule: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One rule as rules of one verb, one group, one resource, one name each."""
    verbs = rule.get("verbs") or []
    if rule.get("nonResourceURLs"):
        for verb in verbs:
            for url in rule["nonResourceURLs"]:
                yield {"verbs": [verb], "nonResourceURLs": [url]}
        return
    names = rule.get("resourceNames") or [""]
    for group in rule.get("apiGroups") or [""]:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                for name in names:
                    atom: dict[str, Any] = {
                        "verbs": [verb],
                        "apiGroups": [group],
                        "resources": [resource],
                    }
                    if name:
                        atom["resourceNames"] = [name]
                    yield atom


def _covers_one(owner: dict[str, Any], atom: dict[str, Any]) -> bool:
    """Kubernetes' ruleCovers: the owner's rule allows everything the atom does."""
    verb = atom["verbs"][0]
    if not verb_matches(owner, verb):
        return False
    if "nonResourceURLs" in atom:
        url = atom["nonResourceURLs"][0]
        for mine in owner.get("nonResourceURLs") or []:
            if mine == "*" or mine == url:
                return True
            if mine.endswith("*") and url.startswith(mine[:-1]):
                return True
        return False
    if owner.get("nonResourceURLs") and not owner.get("resources"):
        return False
    if not group_matches(owner, atom["apiGroups"][0]):
        return False
    resource = atom["resources"][0]
    owned = owner.get("resources") or []
    if "*" not in owned and resource not in owned:
        base, _, sub = resource.partition("/")
        if not (sub and (f"{base}/*" in owned or f"*/{sub}" in owned)):
            return False
    wanted = atom.get("resourceNames") or []
    mine = owner.get("resourceNames") or []
    return not mine or (bool(wanted) and wanted[0] in mine)


def uncovered(owner_rules: list[dict[str, Any]], requested: list[dict[str, Any]]) -> list[dict]:
    """The atoms of `requested` that no rule of `owner_rules` covers."""
    missing = []
    for rule in requested:
        for atom in breakdown(rule):
            if not any(_covers_one(mine, atom) for mine in owner_rules):
                missing.append(atom)
    return missing


def describe_rule(rule: dict[str, Any]) -> str:
    """A rule as Kubernetes prints it in escalation errors."""

    def q(values: list[str]) -> str:
        return "[" + " ".join(f'"{v}"' for v in values) + "]"

    parts = []
    if "nonResourceURLs" in rule:
        parts.append(f"NonResourceURLs:{q(rule['nonResourceURLs'])}")
    else:
        parts.append(f"APIGroups:{q(rule.get('apiGroups') or [])}")
        parts.append(f"Resources:{q(rule.get('resources') or [])}")
        if rule.get("resourceNames"):
            parts.append(f"ResourceNames:{q(rule['resourceNames'])}")
    parts.append(f"Verbs:{q(rule.get('verbs') or [])}")
    return "{" + ", ".join(parts) + "}"
