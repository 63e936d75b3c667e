"""Garbage collector: dependents go when their owners go.

Every object may list owners in `metadata.ownerReferences`. The collector
keeps a graph of owners to dependents from the informer caches and acts on
three situations, as Kubernetes' garbage collector does:

- *Background* (the default): an object all of whose owners are gone is
  deleted.
- *Foreground*: an owner being deleted with the `foregroundDeletion`
  finalizer waits until its dependents that block it are gone; the collector
  deletes them, then removes the finalizer.
- *Orphan*: an owner being deleted with the `orphan` finalizer lets its
  dependents live; the collector removes the owner from their
  ownerReferences, then removes the finalizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.meta import namespaced_key
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

# (apiVersion, kind) of the kinds whose ownership the collector follows.
KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("v1", "Service"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "ControllerRevision"),
    ("v1", "ReplicationController"),
    ("v1", "PersistentVolumeClaim"),
)


@dataclass(frozen=True)
class DeleteDependent:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    propagation: str = "Background"


@dataclass(frozen=True)
class Disown:
    api_version: str
    kind: str
    namespace: str
    name: str
    owner_uid: str


@dataclass(frozen=True)
class RemoveFinalizer:
    finalizer: str


def decide_owner(
    owner: dict[str, Any], dependents: list[dict[str, Any]]
) -> list[DeleteDependent | Disown | RemoveFinalizer]:
    """What to do for an owner that is being deleted with a finalizer of ours."""
    meta = owner["metadata"]
    if not meta.get("deletionTimestamp"):
        return []
    finalizers = meta.get("finalizers") or []
    uid = meta["uid"]
    actions: list[DeleteDependent | Disown | RemoveFinalizer] = []
    if "orphan" in finalizers:
        actions += [
            Disown(
                d["apiVersion"],
                d["kind"],
                d["metadata"].get("namespace", ""),
                d["metadata"]["name"],
                uid,
            )
            for d in dependents
        ]
        actions.append(RemoveFinalizer("orphan"))
    elif "foregroundDeletion" in finalizers:
        blocking = [
            d
            for d in dependents
            if any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in d["metadata"].get("ownerReferences") or []
            )
        ]
        for d in dependents:
            if not d["metadata"].get("deletionTimestamp"):
                actions.append(
                    DeleteDependent(
                        d["apiVersion"],
                        d["kind"],
                        d["metadata"].get("namespace", ""),
                        d["metadata"]["name"],
                        d["metadata"]["uid"],
                        "Foreground",
                    )
                )
        if not blocking:
            actions.append(RemoveFinalizer("foregroundDeletion"))
    return actions


def decide_dependent(obj: dict[str, Any], owner_exists: dict[str, bool]) -> DeleteDependent | None:
    """Delete an object whose every owner is gone (and that is not already going)."""
    refs = obj["metadata"].get("ownerReferences") or []
    if not refs or obj["metadata"].get("deletionTimestamp"):
        return None
    if any(owner_exists.get(r.get("uid", ""), True) for r in refs):
        return None
    meta = obj["metadata"]
    return DeleteDependent(
        obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"], meta["uid"]
    )


class GarbageCollector(Controller):
    name = "garbage-collector"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.informers = {kind: ctx.informers.get(av, kind) for av, kind in KINDS}
        for kind, informer in self.informers.items():
            informer.add_handlers(
                on_add=lambda o, k=kind: self._changed(k, o),
                on_update=lambda _old, o, k=kind: self._changed(k, o),
                on_delete=lambda o, k=kind: self._deleted(k, o),
            )

    def _changed(self, kind: str, obj: dict[str, Any]) -> None:
        self.enqueue(f"{kind}|{namespaced_key(obj)}")

    def _deleted(self, kind: str, obj: dict[str, Any]) -> None:
        # Its dependents may now be orphans: look at each of them.
        uid = obj["metadata"].get("uid", "")
        for dependent_kind, dependent in self._dependents_of(uid):
            self.enqueue(f"{dependent_kind}|{namespaced_key(dependent)}")
        # An owner waiting in foreground deletion may have just lost its last dependent.
        namespace = obj["metadata"].get("namespace", "")
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") in self.informers:
                key = f"{namespace}/{ref['name']}" if namespace else ref["name"]
                self.enqueue(f"{ref['kind']}|{key}")

    def _dependents_of(self, uid: str) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for kind, informer in self.informers.items():
            for obj in informer.store.list():
                if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []):
                    found.append((kind, obj))
        return found

    def _exists(self, uid: str) -> bool:
        return any(
            o["metadata"].get("uid") == uid
            for informer in self.informers.values()
            for o in informer.store.list()
        )

    async def reconcile(self, key: str) -> Result:
        kind, _, obj_key = key.partition("|")
        obj = self.informers[kind].store.get(obj_key)
        if obj is None:
            return Result.done()
        api = self.ctx.client
        dependents = [d for _, d in self._dependents_of(obj["metadata"]["uid"])]
        actions: list[DeleteDependent | Disown | RemoveFinalizer] = list(
            decide_owner(obj, dependents)
        )
        if actions:
            await self.apply(
                actions,
                obj,
                decide=decide_owner,
                observed=f"deleting, finalizers {obj['metadata'].get('finalizers') or []}, "
                f"{len(dependents)} dependents",
                wanted="dependents handled as the propagation policy says, then the owner gone",
            )
        refs = obj["metadata"].get("ownerReferences") or []
        exists = {r["uid"]: self._exists(r["uid"]) for r in refs if "uid" in r}
        # A cache can lag: confirm with the API before deleting for a missing owner.
        for r in refs:
            if not exists.get(r.get("uid", ""), True):
                try:
                    owner = await api.get(
                        r["apiVersion"], r["kind"], obj["metadata"].get("namespace", ""), r["name"]
                    )
                    exists[r["uid"]] = owner["metadata"].get("uid") == r["uid"]
                except errors.NotFound:
                    exists[r["uid"]] = False
                except ValueError:
                    exists[r["uid"]] = True  # a kind we cannot look up: leave it be
        action = decide_dependent(obj, exists)
        if action is not None:
            gone = ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in refs)
            await self.apply(
                [action],
                obj,
                decide=decide_dependent,
                observed=f"every owner is gone ({gone})",
                wanted="no object without its owners",
            )
        return Result.done()

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            DeleteDependent: self._delete_dependent,
            Disown: self._disown,
            RemoveFinalizer: self._remove_finalizer,
        }

    async def _delete_dependent(self, action: DeleteDependent, step: Step) -> None:
        dependent = _ref(action.api_version, action.kind, action.namespace, action.name, action.uid)
        try:
            await step.api.delete(
                action.api_version,
                action.kind,
                action.namespace,
                action.name,
                uid=action.uid,
                propagation=action.propagation,
            )
        except errors.NotFound:
            step.note = "already gone"
            return
        step.event(
            "Normal",
            "GarbageCollected",
            f"Deleted {action.kind} {action.name}: its owner is being deleted or gone "
            f"({action.propagation})",
            on=dependent,
        )

    async def _disown(self, action: Disown, step: Step) -> None:
        try:
            dependent = await step.api.get(
                action.api_version, action.kind, action.namespace, action.name
            )
            refs = [
                r
                for r in dependent["metadata"].get("ownerReferences") or []
                if r.get("uid") != action.owner_uid
            ]
            await step.api.patch(
                action.api_version,
                action.kind,
                action.namespace,
                action.name,
                {"metadata": {"ownerReferences": refs or None}},
            )
        except errors.NotFound:
            step.note = "already gone"
            return
        step.event(
            "Normal",
            "Orphaned",
            f"{action.kind} {action.name} orphaned: its owner was deleted with "
            "propagationPolicy=Orphan",
            on=dependent,
        )

    async def _remove_finalizer(self, action: RemoveFinalizer, step: Step) -> None:
        obj = step.owner or {}
        meta = obj["metadata"]
        finalizers = [f for f in meta.get("finalizers") or [] if f != action.finalizer]
        try:
            await step.api.patch(
                obj["apiVersion"],
                obj["kind"],
                meta.get("namespace", ""),
                meta["name"],
                {"metadata": {"finalizers": finalizers or None}},
            )
        except errors.NotFound:
            step.note = "already gone"
            return
        step.event(
            "Normal",
            "FinalizerRemoved",
            f"Removed finalizer {action.finalizer}: the dependents are handled",
        )


def _ref(api_version: str, kind: str, namespace: str, name: str, uid: str) -> dict[str, Any]:
    """Enough of an object for an Event to name it."""
    meta = {"name": name, "namespace": namespace, "uid": uid}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}
