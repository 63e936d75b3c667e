"""Namespace controller: deleting a namespace deletes everything in it.

A deleted namespace stays, `Terminating`, while its `kubernetes` finalizer
is in spec.finalizers. The controller deletes every namespaced object in it,
kind by kind; once nothing is left it removes the finalizer through the
`finalize` subresource, and the apiserver removes the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api import crd, resources
from api.resources import RESOURCES
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

FINALIZER = "kubernetes"
# Kinds to empty a namespace of (events.k8s.io shares storage with core events;
# review kinds such as LocalSubjectAccessReview are never stored, so never listed).
NAMESPACED = [
    (r.api_version, r.kind)
    for r in RESOURCES
    if r.namespaced and not r.storage and {"list", "delete"} <= set(r.verbs)
]


def decide(namespace: dict[str, Any], remaining: int) -> str:
    """ "wait" (nothing to do), "delete-contents", or "finalize"."""
    if not namespace["metadata"].get("deletionTimestamp"):
        return "wait"
    if FINALIZER not in ((namespace.get("spec") or {}).get("finalizers") or []):
        return "wait"
    return "finalize" if remaining == 0 else "delete-contents"


@dataclass(frozen=True)
class DeleteContent:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Finalize:
    """Remove the `kubernetes` finalizer: the apiserver then deletes the namespace."""


def decide_actions(
    namespace: dict[str, Any], contents: list[tuple[str, str, dict[str, Any]]]
) -> list[DeleteContent | Finalize]:
    """The namespace controller's actions: delete what is left inside, then finalize.

    Objects already being deleted are waited for, not deleted again.
    """
    step = decide(namespace, len(contents))
    if step == "delete-contents":
        return [
            DeleteContent(api_version, kind, obj["metadata"]["name"])
            for api_version, kind, obj in contents
            if not obj["metadata"].get("deletionTimestamp")
        ]
    if step == "finalize":
        return [Finalize()]
    return []


class NamespaceController(Controller):
    name = "namespace-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informers.get("v1", "Namespace")
        self.namespaces.add_handlers(
            on_add=lambda ns: self.enqueue(ns["metadata"]["name"]),
            on_update=lambda _old, ns: self.enqueue(ns["metadata"]["name"]),
        )

    async def _custom_kinds(self) -> list[tuple[str, str]]:
        """Namespaced custom resources (their storage versions), found as Kubernetes'
        namespace controller finds them, by asking the API what is served now."""
        definitions, _ = await self.ctx.client.list(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition"
        )
        infos = [i for d in definitions if crd.is_established(d) for i in crd.infos_for(d)]
        resources.set_custom(infos)  # so the client can reach these kinds by name
        stored = {crd.storage_version(d) for d in definitions}
        return sorted(
            {(i.api_version, i.kind) for i in infos if i.namespaced and i.version in stored}
        )

    async def _contents(self, name: str) -> list[tuple[str, str, dict[str, Any]]]:
        found = []
        for api_version, kind in [*NAMESPACED, *await self._custom_kinds()]:
            items, _ = await self.ctx.client.list(api_version, kind, name)
            found += [(api_version, kind, i) for i in items]
        return found

    async def reconcile(self, key: str) -> Result:
        ns = self.namespaces.store.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return Result.done()
        contents = await self._contents(key)
        actions = decide_actions(ns, contents)
        if actions:
            await self.apply(
                actions,
                ns,
                decide=decide_actions,
                observed=f"being deleted, {len(contents)} objects left inside",
                wanted="an empty namespace, then none",
            )
        if decide(ns, len(contents)) == "delete-contents":
            return Result(requeue_after=1.0)  # check again until it is empty
        return Result.done()

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {DeleteContent: self._delete_content, Finalize: self._finalize}

    async def _delete_content(self, action: DeleteContent, step: Step) -> None:
        namespace = (step.owner or {})["metadata"]["name"]
        try:
            await step.api.delete(
                action.api_version, action.kind, namespace, action.name, propagation="Background"
            )
        except errors.NotFound:
            step.note = "already gone"
            return
        step.event(
            "Normal",
            "NamespaceContentDeleted",
            f"Deleted {action.kind} {action.name}: its namespace is being deleted",
        )

    async def _finalize(self, action: Finalize, step: Step) -> None:
        ns = step.owner or {}
        finalizers = [f for f in ns.get("spec", {}).get("finalizers") or [] if f != FINALIZER]
        body = {**ns, "spec": {**ns.get("spec", {}), "finalizers": finalizers}}
        await step.api.update(body, sub="finalize")
        step.event("Normal", "NamespaceFinalized", "Namespace is empty: finalizer removed")
