"""Deployment controller: one ReplicaSet per pod template, and rollouts between them.

Each distinct pod template gets its own ReplicaSet, named
`<deployment>-<pod-template-hash>` and labelled with that hash so that the
ReplicaSets never fight over pods. `decide()` looks at the Deployment and its
ReplicaSets and returns the next step of the rollout:

- no ReplicaSet for the current template yet: create it (at size 0 for a
  rolling update, so the arithmetic of `rollout.py` grows it);
- RollingUpdate: grow the new ReplicaSet as far as maxSurge allows, shrink
  the old ones as far as maxUnavailable allows — one step per sync; the next
  step comes when pods become available and the watch says so;
- Recreate: shrink every old ReplicaSet to 0, and only when their pods are
  gone, grow the new one;
- replicas changed mid-rollout: scale the active ReplicaSets proportionally;
- beyond revisionHistoryLimit: delete the oldest empty ReplicaSets;
- always: status and the Available and Progressing conditions.
"""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from api.meta import controller_of, namespaced_key, owner_reference, parse_time
from api.selectors import selector_from_dict
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

from . import rollout

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet


# -- actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateReplicaSet:
    replicaset: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class ScaleReplicaSet:
    name: str
    replicas: int
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DeleteReplicaSet:
    name: str


@dataclass(frozen=True)
class AdoptReplicaSet:
    """An orphan ReplicaSet that matches the selector becomes this Deployment's."""

    name: str


@dataclass(frozen=True)
class SetRevision:
    revision: str


@dataclass(frozen=True)
class UpdateStatus:
    status: dict[str, Any] = field(hash=False)


Action = (
    CreateReplicaSet
    | ScaleReplicaSet
    | DeleteReplicaSet
    | AdoptReplicaSet
    | SetRevision
    | UpdateStatus
)


# -- helpers -----------------------------------------------------------------------


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    """FNV-1a of the template, spelled with Kubernetes' safe alphabet."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collisions:
        data += str(collisions).encode()
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    text = str(h)
    return "".join(_ALPHABET[int(c) % len(_ALPHABET)] for c in text)[:10]


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return t


def same_template(rs: dict[str, Any], deployment: dict[str, Any]) -> bool:
    ours = _without_hash((deployment.get("spec") or {}).get("template") or {})
    theirs = _without_hash((rs.get("spec") or {}).get("template") or {})
    for t in (ours, theirs):
        meta = t.setdefault("metadata", {})
        meta.pop("creationTimestamp", None)
        if not meta.get("labels"):
            meta.pop("labels", None)
        if not meta.get("annotations"):
            meta.pop("annotations", None)
    return ours == theirs


def revision(rs: dict[str, Any]) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def new_replicaset(
    deployment: dict[str, Any],
    next_revision: int,
    replicas: int,
    plan: rollout.Plan | None = None,
) -> dict[str, Any]:
    meta, spec = deployment["metadata"], deployment["spec"]
    plan = plan or rollout.plan(deployment)
    template = copy.deepcopy(spec["template"])
    hash_ = template_hash(
        template, int((deployment.get("status") or {}).get("collisionCount") or 0)
    )
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_
    selector = copy.deepcopy(spec["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{hash_}",
            "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {
                REVISION: str(next_revision),
                DESIRED: str(spec.get("replicas", 1)),
                MAX_REPLICAS: str(plan.max_total),
            },
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": int(spec.get("minReadySeconds") or 0),
            "selector": selector,
            "template": template,
        },
    }


def _condition(
    ctype: str, status: str, reason: str, message: str, now: str, old: list[dict[str, Any]]
) -> dict[str, Any]:
    previous = next((c for c in old if c.get("type") == ctype), None)
    changed = previous is None or previous.get("status") != status
    same = previous is not None and previous.get("reason") == reason and not changed
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": previous["lastUpdateTime"] if same and previous else now,
        "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),
        "reason": reason,
        "message": message,
    }


def compute_status(
    deployment: dict[str, Any],
    new: dict[str, Any] | None,
    all_rs: list[dict[str, Any]],
    now: datetime.datetime,
    plan: rollout.Plan | None = None,
) -> dict[str, Any]:
    """The Deployment's status from its ReplicaSets: counts, Available, Progressing.

    Available is True when at least `replicas - maxUnavailable` pods are
    available. Progressing is True while the rollout moves (ReplicaSetUpdated)
    or once it is complete (NewReplicaSetAvailable), Unknown while paused, and
    False (ProgressDeadlineExceeded) when nothing moved for
    progressDeadlineSeconds. A condition keeps its lastTransitionTime while its
    status stays, and its lastUpdateTime while its reason stays.
    """
    spec, meta = deployment["spec"], deployment["metadata"]
    plan = plan or rollout.plan(deployment)
    replicas = plan.replicas
    old_status = deployment.get("status") or {}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def total(field_: str) -> int:
        return sum(int((rs.get("status") or {}).get(field_, 0)) for rs in all_rs)

    available_count = total("availableReplicas")
    status: dict[str, Any] = {
        "observedGeneration": int(meta.get("generation") or 0),
        "replicas": total("replicas"),
        "updatedReplicas": int(((new or {}).get("status") or {}).get("replicas", 0)),
        "readyReplicas": total("readyReplicas"),
        "availableReplicas": available_count,
        "unavailableReplicas": max(replicas - available_count, 0),
    }
    old_conditions = old_status.get("conditions") or []
    if available_count >= plan.min_available:
        available = _condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            stamp,
            old_conditions,
        )
    else:
        available = _condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            stamp,
            old_conditions,
        )
    name = (new or {}).get("metadata", {}).get("name", "")
    complete = (
        new is not None
        and status["updatedReplicas"] == replicas
        and status["replicas"] == replicas
        and available_count >= replicas
    )
    previous = next((c for c in old_conditions if c.get("type") == "Progressing"), None)
    deadline = int(spec.get("progressDeadlineSeconds") or 600)
    if spec.get("paused"):
        progressing = _condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            stamp,
            old_conditions,
        )
    elif complete:
        progressing = _condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{name}" has successfully progressed.',
            stamp,
            old_conditions,
        )
    else:
        moved = (status["updatedReplicas"], available_count) != (
            old_status.get("updatedReplicas"),
            old_status.get("availableReplicas"),
        )
        last = parse_time((previous or {}).get("lastUpdateTime"))
        if not moved and last and (now - last).total_seconds() > deadline:
            progressing = _condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
                stamp,
                old_conditions,
            )
        else:
            progressing = _condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{name}" is progressing.',
                stamp,
                old_conditions,
            )
            if not moved and previous and previous.get("status") == "True":
                progressing["lastUpdateTime"] = previous.get("lastUpdateTime", stamp)
    status["conditions"] = [available, progressing]
    if old_status.get("collisionCount"):
        status["collisionCount"] = old_status["collisionCount"]
    return status


# -- the policy --------------------------------------------------------------------


def decide(
    deployment: dict[str, Any], replicasets: list[dict[str, Any]], now: datetime.datetime
) -> list[Action]:
    """The next step for `deployment`, given the ReplicaSets it owns.

    `replicasets` are those it controls and the orphans its selector matches:
    orphans are adopted first (Kubernetes' ClaimReplicaSets) and then count
    as its own.
    """
    spec, meta = deployment["spec"], deployment["metadata"]
    if meta.get("deletionTimestamp"):
        return []
    plan = rollout.plan(deployment)
    replicas = plan.replicas
    selector = selector_from_dict(spec.get("selector"))
    actions: list[Action] = []
    owned: list[dict[str, Any]] = []
    for rs in replicasets:
        ref = controller_of(rs)
        if ref is None:
            if rs["metadata"].get("deletionTimestamp") or not selector.matches(
                rs["metadata"].get("labels") or {}
            ):
                continue
            actions.append(AdoptReplicaSet(rs["metadata"]["name"]))
        elif ref.get("uid") != meta["uid"]:
            continue
        owned.append(rs)
    ordered = sorted(
        owned, key=lambda rs: (revision(rs), rs["metadata"].get("creationTimestamp", ""))
    )
    new = next((rs for rs in reversed(ordered) if same_template(rs, deployment)), None)
    old = [rs for rs in ordered if rs is not new]
    max_revision = max((revision(rs) for rs in ordered), default=0)

    if spec.get("paused"):
        # Paused: keep sizes in line with replicas, start no rollout.
        active = [rs for rs in ordered if rollout.spec_replicas(rs) > 0] or ([new] if new else [])
        if len(active) == 1 and rollout.spec_replicas(active[0]) != replicas:
            actions.append(
                ScaleReplicaSet(
                    active[0]["metadata"]["name"], replicas, ((DESIRED, str(replicas)),)
                )
            )
    elif new is None:
        rolling = plan.strategy == "RollingUpdate"
        first = not any(rollout.spec_replicas(rs) for rs in old)
        size = replicas if first and rolling else 0
        if rolling and not first:
            size = rollout.new_rs_target(plan, {"spec": {"replicas": 0}}, old)
        actions.append(CreateReplicaSet(new_replicaset(deployment, max_revision + 1, size, plan)))
        actions.append(SetRevision(str(max_revision + 1)))
    else:
        if revision(new) < max_revision or str(revision(new)) != (
            meta.get("annotations") or {}
        ).get(REVISION):
            # A rollback to an older template: it becomes the newest revision.
            target = revision(new) if revision(new) == max_revision else max_revision + 1
            actions.append(SetRevision(str(target)))
            if target != revision(new):
                actions.append(
                    ScaleReplicaSet(
                        new["metadata"]["name"],
                        rollout.spec_replicas(new),
                        ((REVISION, str(target)),),
                    )
                )
        actions += _step(plan, new, old)

    limit = int(spec.get("revisionHistoryLimit", 10))
    empty_old = [
        rs
        for rs in old
        if rollout.spec_replicas(rs) == 0 and int((rs.get("status") or {}).get("replicas", 0)) == 0
    ]
    for rs in empty_old[: max(len(empty_old) - limit, 0)]:
        actions.append(DeleteReplicaSet(rs["metadata"]["name"]))

    status = compute_status(deployment, new, ordered, now, plan)
    if _status_differs(deployment.get("status") or {}, status):
        actions.append(UpdateStatus(status))
    return actions


def _step(plan: rollout.Plan, new: dict[str, Any], old: list[dict[str, Any]]) -> list[Action]:
    """One step of the rollout between `old` ReplicaSets and the `new` one."""
    replicas = plan.replicas
    desired = ((DESIRED, str(replicas)),)
    active_old = [rs for rs in old if rollout.spec_replicas(rs) > 0]
    if plan.strategy == "Recreate":
        if active_old:
            return [ScaleReplicaSet(rs["metadata"]["name"], 0) for rs in active_old]
        if any(int((rs.get("status") or {}).get("replicas", 0)) for rs in old):
            return []  # old pods still terminating: Recreate waits for them
        if rollout.spec_replicas(new) != replicas:
            return [ScaleReplicaSet(new["metadata"]["name"], replicas, desired)]
        return []
    # A scaling event mid-rollout: replicas changed while several ReplicaSets are active.
    active = [*active_old, *([new] if rollout.spec_replicas(new) > 0 else [])]
    annotated = {(rs["metadata"].get("annotations") or {}).get(DESIRED) for rs in active}
    if len(active) > 1 and annotated != {str(replicas)}:
        sizes = rollout.proportional(plan, active)
        return [ScaleReplicaSet(name, size, desired) for name, size in sizes.items()]
    target = rollout.new_rs_target(plan, new, [*old, new])
    if target != rollout.spec_replicas(new):
        return [ScaleReplicaSet(new["metadata"]["name"], target, desired)]
    shrink = rollout.old_rs_scale_down(plan, new, active_old)
    return [ScaleReplicaSet(name, size) for name, size in shrink.items()]


def _status_differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(s: dict[str, Any]) -> dict[str, Any]:
        return {
            **s,
            "conditions": [
                {k: v for k, v in c.items() if k not in ("lastUpdateTime", "lastTransitionTime")}
                for c in s.get("conditions") or []
            ],
        }

    return strip(old) != strip(new)


# -- the shell ---------------------------------------------------------------------


class DeploymentController(Controller):
    name = "deployment-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.deployments = ctx.informers.get("apps/v1", "Deployment")
        self.replicasets = ctx.informers.get("apps/v1", "ReplicaSet")
        self.deployments.add_handlers(
            on_add=lambda d: self.enqueue(namespaced_key(d)),
            on_update=lambda _o, d: self.enqueue(namespaced_key(d)),
        )
        self.replicasets.add_handlers(
            on_add=self._rs_changed,
            on_update=lambda _o, rs: self._rs_changed(rs),
            on_delete=self._rs_changed,
        )

    def _rs_changed(self, rs: dict[str, Any]) -> None:
        ref = controller_of(rs)
        if ref is not None and ref.get("kind") == "Deployment":
            self.enqueue(f"{rs['metadata']['namespace']}/{ref['name']}")

    def _candidates(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """ReplicaSets it controls, and orphans decide() may adopt."""
        uid = deployment["metadata"]["uid"]
        out = []
        for rs in self.replicasets.store.by_index("namespace", deployment["metadata"]["namespace"]):
            ref = controller_of(rs)
            if ref is None or (
                ref.get("uid") == uid and not rs["metadata"].get("deletionTimestamp")
            ):
                out.append(rs)
        return out

    async def reconcile(self, key: str) -> Result:
        deployment = self.deployments.store.get(key)
        if deployment is None:
            return Result.done()
        replicasets = self._candidates(deployment)
        now = datetime.datetime.now(datetime.UTC)
        actions = decide(deployment, replicasets, now)
        if actions:
            sizes = ", ".join(
                f"{rs['metadata']['name']}={rollout.spec_replicas(rs)}" for rs in replicasets
            )
            await self.apply(
                actions,
                deployment,
                decide=decide,
                observed=f"ReplicaSets: {sizes or 'none'}",
                wanted=f"{int(deployment['spec'].get('replicas', 1))} replicas of revision "
                f"{(deployment['metadata'].get('annotations') or {}).get(REVISION, '1')}",
            )
        # Re-check before the progress deadline passes, even if nothing changes.
        deadline = int(deployment["spec"].get("progressDeadlineSeconds") or 600)
        return Result(requeue_after=float(min(deadline, 60)))

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            CreateReplicaSet: self._create_replicaset,
            ScaleReplicaSet: self._scale_replicaset,
            DeleteReplicaSet: self._delete_replicaset,
            AdoptReplicaSet: self._adopt_replicaset,
            SetRevision: self._set_revision,
            UpdateStatus: self._update_status,
        }

    async def _create_replicaset(self, action: CreateReplicaSet, step: Step) -> None:
        created = await step.api.create(action.replicaset)
        step.event(
            "Normal",
            "ScalingReplicaSet",
            f"Scaled up replica set {created['metadata']['name']} to {created['spec']['replicas']}",
        )

    async def _scale_replicaset(self, action: ScaleReplicaSet, step: Step) -> None:
        ns = (step.owner or {})["metadata"]["namespace"]
        current = self.replicasets.store.get(f"{ns}/{action.name}")
        before = rollout.spec_replicas(current) if current else 0
        patch: dict[str, Any] = {"spec": {"replicas": action.replicas}}
        if action.annotations:
            patch["metadata"] = {"annotations": dict(action.annotations)}
        await step.api.patch("apps/v1", "ReplicaSet", ns, action.name, patch)
        if before != action.replicas:
            verb = "up" if action.replicas > before else "down"
            step.event(
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {action.name} from {before} to {action.replicas}",
            )
        else:
            step.event(
                "Normal",
                "AnnotatedReplicaSet",
                f"Annotated replica set {action.name}: "
                + ", ".join(f"{k}={v}" for k, v in action.annotations),
            )

    async def _delete_replicaset(self, action: DeleteReplicaSet, step: Step) -> None:
        ns = (step.owner or {})["metadata"]["namespace"]
        await step.api.delete("apps/v1", "ReplicaSet", ns, action.name)
        step.event(
            "Normal",
            "DeletedReplicaSet",
            f"Deleted old replica set {action.name} (beyond revisionHistoryLimit)",
        )

    async def _adopt_replicaset(self, action: AdoptReplicaSet, step: Step) -> None:
        deployment = step.owner or {}
        ns = deployment["metadata"]["namespace"]
        rs = self.replicasets.store.get(f"{ns}/{action.name}")
        if rs is None:
            step.note = "replica set gone from the cache"
            return
        refs = [*(rs["metadata"].get("ownerReferences") or []), owner_reference(deployment)]
        await step.api.patch(
            "apps/v1", "ReplicaSet", ns, action.name, {"metadata": {"ownerReferences": refs}}
        )
        step.event(
            "Normal",
            "AdoptedReplicaSet",
            f"Adopted replica set {action.name}: it matches the selector and had no owner",
        )

    async def _set_revision(self, action: SetRevision, step: Step) -> None:
        meta = (step.owner or {})["metadata"]
        await step.api.patch(
            "apps/v1",
            "Deployment",
            meta["namespace"],
            meta["name"],
            {"metadata": {"annotations": {REVISION: action.revision}}},
        )
        step.event("Normal", "DeploymentRevision", f"Revision set to {action.revision}")

    async def _update_status(self, action: UpdateStatus, step: Step) -> None:
        meta = (step.owner or {})["metadata"]
        await step.api.patch(
            "apps/v1",
            "Deployment",
            meta["namespace"],
            meta["name"],
            {"status": action.status},
            sub="status",
        )
