"""Pure facts about RBAC objects that the apiserver and the controllers share."""

from __future__ import annotations

from typing import Any

from .selectors import selector_from_dict


def aggregated_rules(role: dict[str, Any], all_roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules an aggregated ClusterRole should hold: the rules of every other
    ClusterRole its `aggregationRule.clusterRoleSelectors` select, by name order,
    without duplicates — what Kubernetes' clusterrole-aggregation controller writes."""
    selectors = []
    for s in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        try:
            selectors.append(selector_from_dict(s))
        except ValueError:
            continue
    name = role["metadata"]["name"]
    rules: list[dict[str, Any]] = []
    for other in sorted(all_roles, key=lambda r: r["metadata"]["name"]):
        if other["metadata"]["name"] == name:
            continue
        labels = other["metadata"].get("labels") or {}
        if any(s.matches(labels) for s in selectors):
            for r in other.get("rules") or []:
                if r not in rules:
                    rules.append(r)
    return rules
