"""ServiceAccount controller: every active namespace has a `default` ServiceAccount."""

from __future__ import annotations

from typing import Any

from client import errors
from client.controller import Context, Controller, Result


def needs_default(namespace: dict[str, Any], existing: set[str]) -> bool:
    active = (namespace.get("status") or {}).get("phase", "Active") == "Active"
    return (
        active
        and not namespace["metadata"].get("deletionTimestamp")
        and ("default" not in existing)
    )


class ServiceAccountController(Controller):
    name = "serviceaccount-controller"
    workers = 1

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informers.get("v1", "Namespace")
        self.accounts = ctx.informers.get("v1", "ServiceAccount")
        self.namespaces.add_handlers(on_add=lambda ns: self.enqueue(ns["metadata"]["name"]))
        self.accounts.add_handlers(on_delete=lambda sa: self.enqueue(sa["metadata"]["namespace"]))

    async def reconcile(self, key: str) -> Result:
        ns = self.namespaces.store.get(key)
        if ns is None:
            return Result.done()
        existing = {sa["metadata"]["name"] for sa in self.accounts.store.by_index("namespace", key)}
        if needs_default(ns, existing):
            try:
                await self.ctx.client.create(
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": key},
                    }
                )
            except (errors.AlreadyExists, errors.Forbidden):
                pass  # there already, or the namespace started terminating meanwhile
        return Result.done()
