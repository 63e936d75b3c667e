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

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from api.meta import namespaced_key
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result
from client.informer import Informer

log = logging.getLogger(__name__)

# Kinds the collector never watches, as Kubernetes' garbage collector leaves out events:
# many, short-lived, owned by nobody.
IGNORED = frozenset({("v1", "Event"), ("events.k8s.io/v1", "Event")})
# The verbs a kind needs for the collector to follow it (client-go's GC needs the same).
NEEDED_VERBS = frozenset({"list", "watch", "delete"})
# How often discovery is read again, for kinds that appear later (custom resources).
DISCOVERY_PERIOD = 30.0

Gvk = tuple[str, str]


def monitored(resources: list[tuple[str, str, tuple[str, ...]]]) -> list[Gvk]:
    """The (apiVersion, kind)s to follow out of discovery's (apiVersion, kind, verbs):
    every kind that can be listed, watched and deleted, except events."""
    out: list[Gvk] = []
    for api_version, kind, verbs in resources:
        gvk = (api_version, kind)
        if gvk in IGNORED or not NEEDED_VERBS <= set(verbs) or gvk in out:
            continue
        out.append(gvk)
    return out


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
    """Follows every kind the server serves, found through discovery (read again every
    DISCOVERY_PERIOD seconds, so that custom resources are picked up when they appear)."""

    name = "garbage-collector"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.informers: dict[Gvk, Informer] = {}
        # The graph: owner uid -> its dependents' keys; uid -> the key of the object.
        self._dependents: dict[str, set[str]] = {}
        self._owners: dict[str, set[str]] = {}
        self._uids: dict[str, str] = {}

    async def run(self) -> None:
        await self._sync_monitors()
        refresher = asyncio.create_task(self._refresh_monitors())
        try:
            await super().run()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def _refresh_monitors(self) -> None:
        while True:
            await asyncio.sleep(DISCOVERY_PERIOD)
            try:
                await self._sync_monitors()
            except (errors.ApiError, httpx.HTTPError) as e:
                log.warning("garbage-collector: discovery failed: %s", e)

    async def _sync_monitors(self) -> None:
        found = await self.ctx.client.discover(preferred_only=True)
        wanted = monitored([(info.api_version, info.kind, verbs) for info, verbs in found])
        for gvk in wanted:
            if gvk in self.informers:
                continue
            informer = self.ctx.informers.get(*gvk)
            informer.add_handlers(
                on_add=lambda o, g=gvk: self._changed(g, o),
                on_update=lambda _old, o, g=gvk: self._changed(g, o),
                on_delete=lambda o, g=gvk: self._deleted(g, o),
            )
            self.informers[gvk] = informer
            informer.start()

    @staticmethod
    def _key(gvk: Gvk, obj: dict[str, Any]) -> str:
        return f"{gvk[0]}|{gvk[1]}|{namespaced_key(obj)}"

    def _changed(self, gvk: Gvk, obj: dict[str, Any]) -> None:
        key = self._key(gvk, obj)
        uid = obj["metadata"].get("uid", "")
        self._uids[uid] = key
        owners = {r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if "uid" in r}
        for gone in self._owners.get(uid, set()) - owners:
            self._dependents.get(gone, set()).discard(key)
        for owner in owners:
            self._dependents.setdefault(owner, set()).add(key)
        self._owners[uid] = owners
        self.enqueue(key)

    def _deleted(self, gvk: Gvk, obj: dict[str, Any]) -> None:
        key = self._key(gvk, obj)
        uid = obj["metadata"].get("uid", "")
        if self._uids.get(uid) == key:
            del self._uids[uid]
        for owner in self._owners.pop(uid, set()):
            self._dependents.get(owner, set()).discard(key)
        # Its dependents may now be orphans: look at each of them.
        for dependent in self._dependents.get(uid, set()):
            self.enqueue(dependent)
        # An owner waiting in foreground deletion may have just lost its last dependent.
        namespace = obj["metadata"].get("namespace", "")
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner_key = self._uids.get(ref.get("uid", ""))
            if owner_key:
                self.enqueue(owner_key)
            elif (ref.get("apiVersion", ""), ref.get("kind", "")) in self.informers:
                name = f"{namespace}/{ref['name']}" if namespace else ref["name"]
                self.enqueue(f"{ref['apiVersion']}|{ref['kind']}|{name}")

    def _get(self, key: str) -> dict[str, Any] | None:
        api_version, kind, obj_key = key.split("|", 2)
        informer = self.informers.get((api_version, kind))
        return informer.store.get(obj_key) if informer else None

    def _dependents_of(self, uid: str) -> list[dict[str, Any]]:
        found = (self._get(k) for k in sorted(self._dependents.get(uid, set())))
        return [d for d in found if d is not None]

    def _exists(self, uid: str) -> bool:
        return uid in self._uids

    async def reconcile(self, key: str) -> Result:
        obj = self._get(key)
        if obj is None:
            return Result.done()
        api = self.ctx.client
        dependents = self._dependents_of(obj["metadata"]["uid"])
        actions = decide_owner(obj, dependents)
        if actions:
            await self.apply(
                list(actions),
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
        # The Event goes on the deleted object: `kubectl get events` in its namespace
        # says who removed it and why (the owner may be cluster-scoped or gone).
        step.event(
            "Normal",
            "GarbageCollected",
            f"Deleted {action.kind} {action.name}: its owner is being deleted or gone "
            f"({action.propagation} propagation)",
            on=_ref(action.api_version, action.kind, action.namespace, action.name, action.uid),
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
