"""ClusterRole aggregation: admin, edit and view grow with labelled roles.

A ClusterRole with an `aggregationRule` holds the rules of every ClusterRole
its selectors pick (`rbac.authorization.k8s.io/aggregate-to-view: "true"`,
...). Any ClusterRole change may change what an aggregated role should hold,
so every change enqueues every aggregated role; the decision is the pure
`api.rbac.aggregated_rules`.
"""

from __future__ import annotations

from typing import Any

from api.rbac import aggregated_rules
from client import errors
from client.controller import Context, Controller, Result

API_VERSION = "rbac.authorization.k8s.io/v1"


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation-controller"
    workers = 1

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.roles = ctx.informers.get(API_VERSION, "ClusterRole")
        self.roles.add_handlers(
            on_add=lambda _: self._all(),
            on_update=lambda _old, _new: self._all(),
            on_delete=lambda _: self._all(),
        )

    def _all(self) -> None:
        for role in self.roles.store.list():
            if role.get("aggregationRule"):
                self.enqueue(role["metadata"]["name"])

    async def reconcile(self, key: str) -> Result:
        role: dict[str, Any] | None = self.roles.store.get(key)
        if role is None or not role.get("aggregationRule"):
            return Result.done()
        want = aggregated_rules(role, self.roles.store.list())
        if want == (role.get("rules") or []):
            return Result.done()
        try:
            await self.ctx.client.patch(
                API_VERSION,
                "ClusterRole",
                "",
                key,
                {
                    "rules": want,
                    "metadata": {"resourceVersion": role["metadata"]["resourceVersion"]},
                },
            )
        except errors.NotFound:
            pass
        except errors.Conflict:
            return Result(requeue_after=0.5)  # changed under us: compute again
        return Result.done()
