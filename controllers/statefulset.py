"""StatefulSet controller: pods with stable identities, started and stopped in order.

Each pod has an ordinal: `web-0`, `web-1`, ... Its name, its hostname and
its claims (`<claim template>-web-0`) follow from the ordinal, so a pod that
is deleted comes back as the same pod with the same storage, and with the
headless Service named in `serviceName` it is reachable as
`web-0.web.<namespace>.svc.cluster.local` (the pod's subdomain is the
Service's name).

`decide()` is the policy, pure and table-tested. With the default
`OrderedReady` management it creates pods one at a time in ordinal order,
each only once every lower one is Running and Ready, and removes them one at
a time from the highest ordinal down; `Parallel` creates and removes them
all at once. A template change rolls out from the highest ordinal down to
`partition`, one pod at a time, each replaced only when every pod is
Running and Ready; `OnDelete` waits for someone to delete the pods. Pods
below the partition are recreated from the current revision, so a partition
is a canary that stays put. The revisions are ControllerRevisions
(history.py); pods carry theirs in the `controller-revision-hash` label.

Claims are created before their pod and never deleted here: the data
outlives pods and scale-downs (`persistentVolumeClaimRetentionPolicy`
Retain, the default). Binding claims to volumes is not this controller's job.
"""

from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from api.meta import controller_of, namespaced_key, owner_reference
from api.pods import is_available, is_ready
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

from . import history
from .replicaset import seconds_until_available

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

Pod = dict[str, Any]


@dataclass(frozen=True)
class Revision:
    name: str
    template: dict[str, Any]


# -- actions --------------------------------------------------------------------


@dataclass(frozen=True)
class CreateClaim:
    name: str
    pod: str
    claim: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class CreatePod:
    name: str
    pod: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    reason: str = "scale"  # scale | update | failed


@dataclass(frozen=True)
class ClaimOwnedByPod:
    """whenScaled: Delete: the claim gets the pod as owner, so it goes with the pod."""

    claim: str
    pod: str
    pod_uid: str


@dataclass(frozen=True)
class UpdateStatus:
    status: dict[str, Any]


Action = CreateClaim | CreatePod | DeletePod | ClaimOwnedByPod | UpdateStatus


# -- identities -------------------------------------------------------------------


def ordinal_of(sts: dict[str, Any], pod: Pod) -> int | None:
    match = re.fullmatch(re.escape(sts["metadata"]["name"]) + r"-(\d+)", pod["metadata"]["name"])
    return int(match.group(1)) if match else None


def claim_name(template: dict[str, Any], pod_name: str) -> str:
    return f"{template['metadata']['name']}-{pod_name}"


def claims_for(sts: dict[str, Any], pod_name: str) -> list[dict[str, Any]]:
    """The claims a pod needs, from volumeClaimTemplates, labelled with the selector's labels."""
    meta, spec = sts["metadata"], sts.get("spec") or {}
    labels = dict(((spec.get("selector") or {}).get("matchLabels")) or {})
    out = []
    for template in spec.get("volumeClaimTemplates") or []:
        claim = copy.deepcopy(template)
        claim.pop("status", None)
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        cmeta = claim.setdefault("metadata", {})
        cmeta["name"] = claim_name(template, pod_name)
        cmeta["namespace"] = meta["namespace"]
        cmeta["labels"] = {**(cmeta.get("labels") or {}), **labels}
        retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        if retention.get("whenDeleted") == "Delete":
            cmeta["ownerReferences"] = [owner_reference(sts, controller=True)]
        out.append(claim)
    return out


def new_pod(sts: dict[str, Any], ordinal: int, revision: Revision) -> Pod:
    """Pod `<name>-<ordinal>` from a revision's template, with its identity and claims."""
    meta, spec = sts["metadata"], sts.get("spec") or {}
    name = f"{meta['name']}-{ordinal}"
    template = copy.deepcopy(revision.template)
    tmeta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    claims = {
        t["metadata"]["name"]: claim_name(t, name) for t in spec.get("volumeClaimTemplates") or []
    }
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
    volumes += [
        {"name": vol, "persistentVolumeClaim": {"claimName": claim}}
        for vol, claim in claims.items()
    ]
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {
                **(tmeta.get("labels") or {}),
                history.HASH_LABEL: revision.name,
                POD_NAME_LABEL: name,
                POD_INDEX_LABEL: str(ordinal),
            },
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner_reference(sts)],
        },
        "spec": pod_spec,
    }


def running_and_ready(pod: Pod) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def revision_of(pod: Pod) -> str:
    return (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL, "")


# -- the policy ----------------------------------------------------------------------


def decide(
    sts: dict[str, Any],
    pods: list[Pod],
    claims: set[str],
    current: Revision,
    update: Revision,
    now: datetime.datetime,
) -> list[Action]:
    """What to do next for `sts`: `pods` it owns, `claims` (names) that exist."""
    spec = sts.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    start = int((spec.get("ordinals") or {}).get("start") or 0)
    parallel = spec.get("podManagementPolicy") == "Parallel"
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    min_ready = int(spec.get("minReadySeconds") or 0)

    by_ordinal: dict[int, Pod] = {}
    for pod in pods:
        ordinal = ordinal_of(sts, pod)
        if ordinal is not None:
            by_ordinal[ordinal] = pod
    wanted = range(start, start + replicas)
    condemned = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
    actions: list[Action] = []

    # 1. Bring up the pods that should exist, in order.
    for ordinal in wanted:
        pod = by_ordinal.get(ordinal)
        if pod is not None and (pod.get("status") or {}).get("phase") == "Failed":
            if not pod["metadata"].get("deletionTimestamp"):
                actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"], "failed"))
            if not parallel:
                break
            continue
        if pod is None:
            # Below the partition a pod comes back as it was (the current revision).
            revision = current if rolling and ordinal < start + partition else update
            made = new_pod(sts, ordinal, revision)
            for claim in claims_for(sts, made["metadata"]["name"]):
                if claim["metadata"]["name"] not in claims:
                    actions.append(
                        CreateClaim(claim["metadata"]["name"], made["metadata"]["name"], claim)
                    )
            actions.append(CreatePod(made["metadata"]["name"], made))
            if not parallel:
                break
            continue
        if not parallel and (
            pod["metadata"].get("deletionTimestamp") or not running_and_ready(pod)
        ):
            break  # OrderedReady: wait for this one before touching the next

    all_healthy = all(
        o in by_ordinal
        and running_and_ready(by_ordinal[o])
        and not by_ordinal[o]["metadata"].get("deletionTimestamp")
        for o in wanted
    )

    # 2. Remove pods above replicas, from the highest ordinal down.
    busy = any(isinstance(a, CreatePod | DeletePod) for a in actions)
    for ordinal in condemned:
        pod = by_ordinal[ordinal]
        if pod["metadata"].get("deletionTimestamp"):
            if not parallel:
                busy = True
                break
            continue
        if not parallel and (busy or not all_healthy):
            break
        retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        if retention.get("whenScaled") == "Delete":
            for template in spec.get("volumeClaimTemplates") or []:
                claim = claim_name(template, pod["metadata"]["name"])
                if claim in claims:
                    actions.append(
                        ClaimOwnedByPod(claim, pod["metadata"]["name"], pod["metadata"]["uid"])
                    )
        actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
        if not parallel:
            busy = True
            break

    # 3. Roll the template out: highest ordinal first, down to the partition, one at a time.
    if rolling and not busy and all_healthy and not condemned:
        for ordinal in sorted((o for o in wanted if o >= start + partition), reverse=True):
            pod = by_ordinal[ordinal]
            if revision_of(pod) != update.name:
                actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"], "update"))
                break

    # 4. Status.
    present = list(by_ordinal.values())
    status: dict[str, Any] = {
        "observedGeneration": int(sts["metadata"].get("generation") or 0),
        "replicas": len(present),
        "readyReplicas": sum(1 for p in present if is_ready(p)),
        "availableReplicas": sum(1 for p in present if is_available(p, min_ready, now)),
        "currentReplicas": sum(1 for p in present if revision_of(p) == current.name),
        "updatedReplicas": sum(1 for p in present if revision_of(p) == update.name),
        "currentRevision": current.name,
        "updateRevision": update.name,
        "collisionCount": int((sts.get("status") or {}).get("collisionCount") or 0),
    }
    done = (
        status["updatedReplicas"] == replicas
        and status["readyReplicas"] == replicas
        and status["replicas"] == replicas
    )
    if done or (not rolling and status["currentReplicas"] == 0):
        status["currentRevision"] = update.name  # the rollout is over
        status["currentReplicas"] = status["updatedReplicas"]
    old = sts.get("status") or {}
    if any(old.get(k, 0 if isinstance(v, int) else "") != v for k, v in status.items()):
        actions.append(UpdateStatus(status))
    return actions


def template_of(revision: dict[str, Any]) -> dict[str, Any]:
    """The pod template a ControllerRevision stored (its data without the directive)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


# -- the shell ---------------------------------------------------------------------


class StatefulSetController(Controller):
    name = "statefulset-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sets = ctx.informers.get("apps/v1", "StatefulSet")
        self.pods = ctx.informers.get("v1", "Pod")
        self.revisions = ctx.informers.get("apps/v1", "ControllerRevision")
        self.claims = ctx.informers.get("v1", "PersistentVolumeClaim")
        self.sets.add_handlers(
            on_add=lambda s: self.enqueue(namespaced_key(s)),
            on_update=lambda _o, s: self.enqueue(namespaced_key(s)),
        )
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda _o, p: self._pod_changed(p),
            on_delete=self._pod_changed,
        )

    def _pod_changed(self, pod: Pod) -> None:
        ref = controller_of(pod)
        if ref is not None and ref.get("kind") == "StatefulSet":
            self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")

    async def reconcile(self, key: str) -> Result:
        sts = self.sets.store.get(key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return Result.done()
        ns, uid = sts["metadata"]["namespace"], sts["metadata"]["uid"]
        revisions = [
            r
            for r in self.revisions.store.by_index("namespace", ns)
            if (controller_of(r) or {}).get("uid") == uid
        ]
        latest = history.plan_current(sts, revisions)
        update = Revision(latest.name, sts["spec"]["template"])
        current_name = (sts.get("status") or {}).get("currentRevision") or latest.name
        stored = next((r for r in revisions if r["metadata"]["name"] == current_name), None)
        current = Revision(current_name, template_of(stored)) if stored else update
        pods = [
            p
            for p in self.pods.store.by_index("namespace", ns)
            if (controller_of(p) or {}).get("uid") == uid
        ]
        claims = {c["metadata"]["name"] for c in self.claims.store.by_index("namespace", ns)}
        now = datetime.datetime.now(datetime.UTC)
        before, after = history.decide(
            latest,
            revisions,
            {current_name} | {revision_of(p) for p in pods},
            limit=int(sts["spec"].get("revisionHistoryLimit", 10)),
        )
        actions = [*before, *decide(sts, pods, claims, current, update, now), *after]
        if actions:
            await self.apply(
                actions,
                sts,
                decide=decide,
                observed=f"{len(pods)} pods",
                wanted=f"{int(sts['spec'].get('replicas', 1))} replicas of revision {latest.name}",
            )
        # availableReplicas moves when a pod has been Ready for minReadySeconds: no event
        # announces that moment, so come back then.
        wait = seconds_until_available(sts, pods, now)
        return Result(requeue_after=wait) if wait is not None else Result.done()

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            **history.HANDLERS,
            CreateClaim: self._create_claim,
            CreatePod: self._create_pod,
            DeletePod: self._delete_pod,
            ClaimOwnedByPod: self._claim_owned_by_pod,
            UpdateStatus: self._update_status,
        }

    async def _create_claim(self, action: CreateClaim, step: Step) -> None:
        name = (step.owner or {})["metadata"]["name"]
        try:
            await step.api.create(action.claim)
        except errors.AlreadyExists:
            step.note = "the claim exists already"
            return
        except errors.ApiError as e:
            step.event(
                "Warning",
                "FailedCreate",
                f"create Claim {action.name} for Pod {action.pod} in StatefulSet {name} "
                f"failed error: {e}",
            )
            raise
        step.event(
            "Normal",
            "SuccessfulCreate",
            f"create Claim {action.name} Pod {action.pod} in StatefulSet {name} success",
        )

    async def _create_pod(self, action: CreatePod, step: Step) -> None:
        name = (step.owner or {})["metadata"]["name"]
        try:
            await step.api.create(action.pod)
        except errors.AlreadyExists:
            step.note = "the old one is still terminating"
            return
        except errors.ApiError as e:
            step.event(
                "Warning",
                "FailedCreate",
                f"create Pod {action.name} in StatefulSet {name} failed error: {e}",
            )
            raise
        step.event(
            "Normal",
            "SuccessfulCreate",
            f"create Pod {action.name} in StatefulSet {name} successful",
        )

    async def _delete_pod(self, action: DeletePod, step: Step) -> None:
        meta = (step.owner or {})["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if action.reason == "failed":
            step.event(
                "Warning",
                "RecreatingFailedPod",
                f"StatefulSet {ns}/{name} is recreating failed Pod {action.name}",
            )
        try:
            await step.api.delete("v1", "Pod", ns, action.name, uid=action.uid)
        except errors.NotFound:
            step.note = "already gone"
            return
        step.event(
            "Normal",
            "SuccessfulDelete",
            f"delete Pod {action.name} in StatefulSet {name} successful",
        )

    async def _claim_owned_by_pod(self, action: ClaimOwnedByPod, step: Step) -> None:
        """whenDeleted/whenScaled Delete: the claim goes with its pod (no Event in Kubernetes)."""
        step.quiet = True
        ns = (step.owner or {})["metadata"]["namespace"]
        claim = self.claims.store.get(f"{ns}/{action.claim}")
        if claim is None:
            step.note = "claim gone from the cache"
            return
        ref = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": action.pod,
            "uid": action.pod_uid,
            "controller": False,
            "blockOwnerDeletion": True,
        }
        refs = [*(claim["metadata"].get("ownerReferences") or []), ref]
        await step.api.patch(
            "v1", "PersistentVolumeClaim", ns, action.claim, {"metadata": {"ownerReferences": refs}}
        )

    async def _update_status(self, action: UpdateStatus, step: Step) -> None:
        meta = (step.owner or {})["metadata"]
        await step.api.patch(
            "apps/v1",
            "StatefulSet",
            meta["namespace"],
            meta["name"],
            {"status": action.status},
            sub="status",
        )
