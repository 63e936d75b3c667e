"""ControllerRevisions: the rollout history of DaemonSets and StatefulSets.

A Deployment keeps its history as old ReplicaSets; a DaemonSet or StatefulSet
owns its pods directly, so Kubernetes keeps each pod template it has rolled
out as an immutable ControllerRevision named `<owner>-<hash>`, whose `data`
is the patch `{"spec": {"template": {..., "$patch": "replace"}}}` and whose
`revision` is a number that only grows. `kubectl rollout history` lists them;
`kubectl rollout undo` applies one's `data` to the owner as a strategic merge
patch. When the owner's template becomes equal to an old revision again (an
undo), that revision is reused and renumbered as the newest, rather than a
copy being made: so revision numbers say in which order templates were live.

The decisions here are pure (`plan_current`, `decide`); the DaemonSet and
StatefulSet controllers put the actions `decide` returns before and after
their own, and carry them out with `HANDLERS` through the one shell. Storing
or pruning a revision is bookkeeping Kubernetes records no Event for.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from api.meta import owner_reference
from client import errors
from client.actions import Handler, Step

HASH_LABEL = "controller-revision-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet


def fnv_hash(value: Any, collisions: int = 0) -> str:
    """FNV-1a of the value's JSON (plus the collision count), in the safe alphabet."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    if collisions:
        data += str(collisions).encode()
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_ALPHABET[int(c) % len(_ALPHABET)] for c in str(h))[:10]


def revision_data(owner: dict[str, Any]) -> dict[str, Any]:
    """The patch a revision stores: the owner's pod template, replacing the old one whole."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_number(revision: dict[str, Any]) -> int:
    return int(revision.get("revision") or 0)


@dataclass(frozen=True)
class RevisionPlan:
    """What to write so that the owner's current template has a revision.

    `create` is a new ControllerRevision (None when one exists); `renumber` is
    (name, revision) for an old revision that became current again; `name` and
    `hash` identify the current revision either way.
    """

    name: str
    hash: str
    create: dict[str, Any] | None = None
    renumber: tuple[str, int] | None = None


def plan_current(owner: dict[str, Any], revisions: list[dict[str, Any]]) -> RevisionPlan:
    """The revision of the owner's current template, and how to get it stored."""
    data = revision_data(owner)
    newest = max((revision_number(r) for r in revisions), default=0)
    same = [r for r in revisions if r.get("data") == data]
    if same:
        match = max(same, key=revision_number)
        name = match["metadata"]["name"]
        labels = match["metadata"].get("labels") or {}
        hash_ = labels.get(HASH_LABEL) or name.rsplit("-", 1)[-1]
        if revision_number(match) < newest:
            return RevisionPlan(name, hash_, renumber=(name, newest + 1))
        return RevisionPlan(name, hash_)
    collisions = int((owner.get("status") or {}).get("collisionCount") or 0)
    hash_ = fnv_hash((owner.get("spec") or {}).get("template") or {}, collisions)
    meta = owner["metadata"]
    name = f"{meta['name']}-{hash_}"
    template_labels = (((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels"
    ) or {}
    revision = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {**template_labels, HASH_LABEL: hash_},
            # The owner's annotations travel along (kubernetes.io/change-cause is
            # what `kubectl rollout history` prints as CHANGE-CAUSE).
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(owner)],
        },
        "data": data,
        "revision": newest + 1,
    }
    return RevisionPlan(name, hash_, create=revision)


def history_to_delete(revisions: list[dict[str, Any]], live: set[str], limit: int) -> list[str]:
    """Old revisions beyond revisionHistoryLimit, oldest first; live ones are never deleted."""
    old = sorted((r for r in revisions if r["metadata"]["name"] not in live), key=revision_number)
    excess = len(old) - max(limit, 0)
    return [r["metadata"]["name"] for r in old[:excess]] if excess > 0 else []


# -- actions: one API call each -------------------------------------------------------


@dataclass(frozen=True)
class CreateRevision:
    name: str
    revision: dict[str, Any] = field(hash=False, compare=False, repr=False)


@dataclass(frozen=True)
class RenumberRevision:
    name: str
    revision: int


@dataclass(frozen=True)
class DeleteRevision:
    name: str


Action = CreateRevision | RenumberRevision | DeleteRevision


def decide(
    current: RevisionPlan,
    revisions: list[dict[str, Any]],
    live: set[str],
    *,
    limit: int,
) -> tuple[list[Action], list[Action]]:
    """(before, after): store the current revision first; prune old ones last.

    `live` names the revisions pods still run (never pruned), and the current
    one is live too.
    """
    before: list[Action] = []
    if current.create is not None:
        before.append(CreateRevision(current.name, current.create))
    elif current.renumber is not None:
        before.append(RenumberRevision(*current.renumber))
    keep = live | {current.name}
    after: list[Action] = [DeleteRevision(n) for n in history_to_delete(revisions, keep, limit)]
    return before, after


async def _create(action: CreateRevision, step: Step) -> None:
    step.quiet = True
    try:
        await step.api.create(action.revision)
    except errors.AlreadyExists:
        step.note = "made by an earlier sync whose watch event has not arrived yet"


async def _renumber(action: RenumberRevision, step: Step) -> None:
    step.quiet = True
    ns = (step.owner or {})["metadata"]["namespace"]
    await step.api.patch(
        "apps/v1", "ControllerRevision", ns, action.name, {"revision": action.revision}
    )


async def _delete(action: DeleteRevision, step: Step) -> None:
    step.quiet = True
    ns = (step.owner or {})["metadata"]["namespace"]
    try:
        await step.api.delete("apps/v1", "ControllerRevision", ns, action.name)
    except errors.NotFound:
        step.note = "already gone"


HANDLERS: dict[type, Handler] = {
    CreateRevision: _create,
    RenumberRevision: _renumber,
    DeleteRevision: _delete,
}
