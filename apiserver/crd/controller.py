"""The definitions' controller, inside the apiserver (kube-apiserver's apiextensions
controllers: naming, establishing, finalizing).

It follows every CustomResourceDefinition in etcd and:

- accepts a definition's names unless another definition of the group holds
  them (condition NamesAccepted), then marks it Established, records its
  storage version in `status.storedVersions`, and puts its served versions in
  the resource table, so discovery, routing and OpenAPI see them at once;
- when a definition is being deleted (finalizer
  `customresourcecleanup.apiextensions.k8s.io`), refuses new objects, deletes
  every object of it, and then lets the definition go.

`decide` is the pure part: the status a definition should have.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
from typing import Any

from api import crd, resources
from api.resources import ResourceInfo

from .. import errors
from ..registry import (
    DeleteOptions,
    ListOptions,
    Registry,
    WriteOptions,
    now_rfc3339,
    storage_prefix,
)

log = logging.getLogger("skiff.apiserver.crd")
MANAGER = "apiextensions-apiserver"
CLEANUP_RETRY = 1.0  # seconds between passes while objects with finalizers remain


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def _set_condition(conditions: list[dict[str, Any]], new: dict[str, Any]) -> None:
    for i, c in enumerate(conditions):
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"]:
                new = {
                    **new,
                    "lastTransitionTime": c.get("lastTransitionTime", new["lastTransitionTime"]),
                }
            conditions[i] = new
            return
    conditions.append(new)


def decide(definition: dict[str, Any], others: list[dict[str, Any]], now: str) -> dict[str, Any]:
    """The status `definition` should have, given the other definitions."""
    status = copy.deepcopy(definition.get("status") or {})
    spec = definition.get("spec") or {}
    conditions = list(status.get("conditions") or [])
    if (definition.get("metadata") or {}).get("deletionTimestamp"):
        _set_condition(
            conditions,
            _condition("Terminating", "True", "InstanceDeletionInProgress",
                       "CustomResource deletion is in progress", now),
        )  # fmt: skip
        status["conditions"] = conditions
        return status
    conflict = crd.names_conflict(definition, others)
    if conflict:
        _set_condition(conditions, _condition("NamesAccepted", "False", "MultipleNameConflict",
                                              conflict, now))  # fmt: skip
        if not crd.is_established(definition):
            _set_condition(conditions, _condition("Established", "False", "NotAccepted",
                                                  "not all names are accepted", now))  # fmt: skip
        status["conditions"] = conditions
        status.setdefault("acceptedNames", {"plural": "", "kind": ""})
        return status
    names = dict(spec.get("names") or {})
    status["acceptedNames"] = names
    _set_condition(conditions, _condition("NamesAccepted", "True", "NoConflicts",
                                          "no conflicts found", now))  # fmt: skip
    _set_condition(conditions, _condition("Established", "True", "InitialNamesAccepted",
                                          "the initial names have been accepted", now))  # fmt: skip
    status["conditions"] = conditions
    stored = list(status.get("storedVersions") or [])
    version = crd.storage_version(definition)
    if version and version not in stored:
        stored.append(version)
    status["storedVersions"] = stored
    return status


def _same_status(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = lambda s: {  # noqa: E731
        **s,
        "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                       for c in s.get("conditions") or []],
    }  # fmt: skip
    return strip(a) == strip(b)


def served(definitions: dict[str, dict[str, Any]]) -> list[ResourceInfo]:
    """The resource table entries of every Established definition (one being deleted
    too: its objects' finalizers must still be removable while it cleans up)."""
    out: list[ResourceInfo] = []
    for definition in definitions.values():
        if crd.is_established(definition):
            out += crd.infos_for(definition)
    return out


class CRDController:
    def __init__(self, registry: Registry, writes: bool = True) -> None:
        self.registry = registry
        # False in a worker of several (workers.py): it serves the definitions while
        # the parent alone writes their status and cleans up, once, not N times.
        self.writes = writes
        info = resources.lookup(crd.GROUP, "v1", "customresourcedefinitions")
        assert info is not None
        self.info = info
        self.definitions: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._cleanups: dict[str, asyncio.Task[None]] = {}
        self.revision = 0  # the newest definition change served
        self._advanced = asyncio.Event()  # set (and replaced) whenever `revision` moves

    async def start(self) -> None:
        """Serve what etcd holds before the apiserver answers its first request."""
        items, revision, _, _ = await self.registry.list(self.info, "", ListOptions())
        for item in items:
            self.definitions[item["metadata"]["name"]] = item
        self._install()
        self._advance(int(revision))
        for item in items:
            if self.writes:
                await self._sync(item)
        self._task = asyncio.create_task(self._follow(str(revision)), name="crd controller")

    async def stop(self) -> None:
        for task in [self._task, *self._cleanups.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
            self._advanced.set()
            self._advanced = asyncio.Event()

    async def catch_up(self, seconds: float = 0.5) -> None:
        """Serve every definition etcd holds now (waiting at most `seconds`).

        Asked before a 404 for an unknown kind and before the group list: with
        several apiserver workers a definition created through one worker reaches
        the others a watch delivery later, and a client that created it (and saw
        it Established) may ask the other at once. One keys-only etcd range says
        whether a newer definition exists."""
        _, newest, _ = await self.registry.store.changed_since(
            storage_prefix(self.info), self.revision
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.revision < newest and (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), left)

    def _install(self) -> None:
        resources.set_custom(served(self.definitions))

    async def _follow(self, revision: str) -> None:
        while True:
            try:
                async for event, item in self.registry.watch(
                    self.info, "", ListOptions(), revision
                ):
                    if event == "PROGRESS" or not isinstance(item, dict):
                        continue
                    revision = str(item["metadata"].get("resourceVersion", revision))
                    name = item["metadata"]["name"]
                    if event == "DELETED":
                        self.definitions.pop(name, None)
                        self._install()
                        self._advance(int(revision))
                        continue
                    self.definitions[name] = item
                    self._install()
                    self._advance(int(revision))
                    if self.writes:
                        await self._sync(item)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # etcd away, compaction: list again and go on
                log.warning("following definitions: %s", e)
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    items, rev, _, _ = await self.registry.list(self.info, "", ListOptions())
                    self.definitions = {i["metadata"]["name"]: i for i in items}
                    self._install()
                    revision = str(rev)

    async def _sync(self, definition: dict[str, Any]) -> None:
        name = definition["metadata"]["name"]
        others = [d for n, d in self.definitions.items() if n != name]
        wanted = decide(definition, others, now_rfc3339())
        if not _same_status(wanted, definition.get("status") or {}):
            try:
                await self.registry.update(
                    self.info,
                    "",
                    name,
                    lambda current: {**current, "status": wanted},
                    WriteOptions(field_manager=MANAGER),
                    subresource="status",
                )
            except errors.ApiError as e:
                if e.code != 404:
                    log.warning("status of %s: %s", name, e.message)
        if definition["metadata"].get("deletionTimestamp") and name not in self._cleanups:
            self._cleanups[name] = asyncio.create_task(self._clean_up(definition))

    def _storage_info(self, definition: dict[str, Any]) -> ResourceInfo | None:
        every = dict(definition)
        every["spec"] = {
            **definition.get("spec", {}),
            "versions": [
                {**v, "served": True} for v in definition.get("spec", {}).get("versions") or []
            ],
        }
        version = crd.storage_version(definition)
        for info in crd.infos_for(every):
            if info.version == version:
                return dataclasses.replace(info, custom=None)
        return None

    async def _clean_up(self, definition: dict[str, Any]) -> None:
        """Delete every object of the definition, then drop the cleanup finalizer."""
        name = definition["metadata"]["name"]
        try:
            info = self._storage_info(definition)
            while info is not None:
                items, _, _, _ = await self.registry.list(info, "", ListOptions())
                if not items:
                    break
                for item in items:
                    meta = item["metadata"]
                    if meta.get("deletionTimestamp"):
                        continue  # waiting for its own finalizers
                    with contextlib.suppress(errors.ApiError):
                        await self.registry.delete(
                            info, meta.get("namespace", ""), meta["name"], DeleteOptions()
                        )
                await asyncio.sleep(CLEANUP_RETRY)

            def drop(current: dict[str, Any]) -> dict[str, Any]:
                meta = current["metadata"]
                meta["finalizers"] = [
                    f for f in meta.get("finalizers") or [] if f != crd.CLEANUP_FINALIZER
                ]
                if not meta["finalizers"]:
                    del meta["finalizers"]
                return current

            await self.registry.update(
                self.info, "", name, drop, WriteOptions(field_manager=MANAGER)
            )
        except errors.ApiError as e:
            if e.code != 404:
                log.warning("cleaning up %s: %s", name, e.message)
        finally:
            self._cleanups.pop(name, None)
