"""DaemonSet controller: one pod of the DaemonSet on every node that should run it.

`decide()` is the policy, pure and table-tested. For each node it asks
"should a daemon pod run here?" — the template's nodeSelector and required
node affinity match the node, and every NoSchedule/NoExecute taint is
tolerated (counting the tolerations Kubernetes adds to every daemon pod, so
that a NotReady, cordoned or memory-pressured node keeps its daemons) — and
compares the answer with the pods it finds there.

Pods are created already aimed at their node, as Kubernetes does since 1.12:
the template's required node affinity is replaced by a term that matches
only `metadata.name` of that node, and the scheduler binds the pod there.
That keeps one path for placing pods (the scheduler checks resources and
ports) while the DaemonSet decides *which* node.

Template changes roll out node by node. With RollingUpdate and maxSurge 0,
an old pod is deleted (at most maxUnavailable nodes without an available
pod at a time) and the node gets a new one; with maxSurge > 0 the new pod
starts beside the old one, which goes once the new one is available.
OnDelete replaces nothing: a pod gets the new template when someone deletes
it. Each template rolled out is kept as a ControllerRevision (history.py).
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from api.meta import controller_of, namespaced_key, owner_reference
from api.nodeaffinity import pod_fits_node
from api.pods import is_available, is_ready, ready_since
from api.taints import tolerated
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

from . import history
from .rollout import resolve

GENERATION_LABEL = "pod-template-generation"

Pod = dict[str, Any]
Node = dict[str, Any]


def daemon_tolerations(template_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The tolerations every daemon pod gets on top of its own (Kubernetes'
    AddOrUpdateDaemonPodTolerations): daemons stay on unhealthy and cordoned nodes."""
    added = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    if template_spec.get("hostNetwork"):
        added.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    tolerations = list(template_spec.get("tolerations") or [])
    for key, effect in added:
        t = {"key": key, "operator": "Exists", "effect": effect}
        if not any(x.get("key") == key and x.get("effect") == effect for x in tolerations):
            tolerations.append(t)
    return tolerations


def should_run(ds: dict[str, Any], node: Node) -> bool:
    """Whether the DaemonSet's pod belongs on this node."""
    template_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    wanted_node = template_spec.get("nodeName")
    if wanted_node and wanted_node != node["metadata"]["name"]:
        return False
    if not pod_fits_node({"spec": template_spec}, node):
        return False
    tolerations = daemon_tolerations(template_spec)
    return all(
        tolerated(taint, tolerations)
        for taint in (node.get("spec") or {}).get("taints") or []
        if taint.get("effect") in ("NoSchedule", "NoExecute")
    )


def node_of(pod: Pod) -> str:
    """The node a daemon pod is on, or aimed at while the scheduler has not bound it yet."""
    name = (pod.get("spec") or {}).get("nodeName")
    if name:
        return str(name)
    required = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and f.get("values"):
                return str(f["values"][0])
    return ""


# -- actions --------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePod:
    node: str
    revision_hash: str = ""  # the controller-revision-hash the new pod carries


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    why: str = ""  # a Warning event's message, when the deletion is worth one


@dataclass(frozen=True)
class UpdateStatus:
    status: dict[str, Any]


Action = CreatePod | DeletePod | UpdateStatus


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None


# -- the policy ----------------------------------------------------------------------


def decide(
    ds: dict[str, Any],
    nodes: list[Node],
    pods: list[Pod],
    current_hash: str,
    now: datetime.datetime,
) -> Plan:
    """Pods to create and delete, and the status, for the DaemonSet `ds`.

    `pods` are the pods it controls; `current_hash` names the revision of its
    current template (pods carry it in the `controller-revision-hash` label).
    """
    plan = Plan()
    spec = ds.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    by_node: dict[str, list[Pod]] = {}
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        by_node.setdefault(node_of(pod), []).append(pod)

    def is_new(pod: Pod) -> bool:
        return (pod["metadata"].get("labels") or {}).get(history.HASH_LABEL) == current_hash

    eligible: list[str] = []
    counts = dict(current=0, misscheduled=0, ready=0, available=0, updated=0)
    deleted: set[str] = set()
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        here = sorted(
            by_node.pop(name, []), key=lambda p: p["metadata"].get("creationTimestamp") or ""
        )
        if not should_run(ds, node):
            if here:
                counts["misscheduled"] += 1
            for pod in here:
                plan.actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
                deleted.add(pod["metadata"]["uid"])
            continue
        eligible.append(name)
        failed = [p for p in here if (p.get("status") or {}).get("phase") == "Failed"]
        for pod in failed:
            plan.actions.append(
                DeletePod(
                    pod["metadata"]["name"],
                    pod["metadata"]["uid"],
                    f"Found failed daemon pod {pod['metadata']['namespace']}/"
                    f"{pod['metadata']['name']} on node {name}, will try to kill it",
                )
            )
            deleted.add(pod["metadata"]["uid"])
        here = [p for p in here if p not in failed]
        if not here:
            plan.actions.append(CreatePod(name, current_hash))
            continue
        counts["current"] += 1
        # More than one pod: keep one new and one old at most (a surge in progress),
        # otherwise the oldest.
        keep = _keep(here, is_new, surge=_max_surge(ds, 1) > 0)
        for pod in here:
            if pod not in keep:
                plan.actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
                deleted.add(pod["metadata"]["uid"])
        if any(is_ready(p) for p in keep):
            counts["ready"] += 1
        if any(is_available(p, min_ready, now) for p in keep):
            counts["available"] += 1
        if any(is_new(p) for p in keep):
            counts["updated"] += 1
    for leftovers in by_node.values():  # pods on nodes that no longer exist
        for pod in leftovers:
            plan.actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
            deleted.add(pod["metadata"]["uid"])

    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        _rolling_update(
            ds, eligible, by_node_live(pods, deleted), is_new, min_ready, now, plan, current_hash
        )

    status = {
        "currentNumberScheduled": counts["current"],
        "numberMisscheduled": counts["misscheduled"],
        "desiredNumberScheduled": len(eligible),
        "numberReady": counts["ready"],
        "observedGeneration": int(ds["metadata"].get("generation") or 0),
        "updatedNumberScheduled": counts["updated"],
        "numberAvailable": counts["available"],
        "numberUnavailable": len(eligible) - counts["available"],
    }
    old = ds.get("status") or {}
    if any(old.get(k, 0) != v for k, v in status.items()):
        plan.actions.append(UpdateStatus(status))
    if min_ready:
        waits = [
            min_ready - (now - since).total_seconds()
            for p in pods
            if (since := ready_since(p)) is not None and (now - since).total_seconds() < min_ready
        ]
        if waits:
            plan.requeue_after = max(min(waits), 0.5)
    return plan


def by_node_live(pods: list[Pod], deleted: set[str]) -> dict[str, list[Pod]]:
    out: dict[str, list[Pod]] = {}
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp") or pod["metadata"]["uid"] in deleted:
            continue
        if (pod.get("status") or {}).get("phase") == "Failed":
            continue
        out.setdefault(node_of(pod), []).append(pod)
    return out


def _keep(here: list[Pod], is_new: Any, *, surge: bool) -> list[Pod]:
    new = [p for p in here if is_new(p)]
    old = [p for p in here if not is_new(p)]
    if surge and new and old:
        return [new[0], old[0]]
    return [(new or old)[0]]


def _max_surge(ds: dict[str, Any], desired: int) -> int:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    return resolve(rolling.get("maxSurge", 0), desired, round_up=True)


def _rolling_update(
    ds: dict[str, Any],
    eligible: list[str],
    live: dict[str, list[Pod]],
    is_new: Any,
    min_ready: int,
    now: datetime.datetime,
    plan: Plan,
    current_hash: str,
) -> None:
    """Replace old pods node by node within maxUnavailable (or maxSurge) budget."""
    desired = len(eligible)
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    max_surge = _max_surge(ds, desired)
    max_unavailable = resolve(rolling.get("maxUnavailable", 1), desired, round_up=True)
    if max_surge == 0 and max_unavailable == 0:
        max_unavailable = 1
    planned_creates = {a.node for a in plan.actions if isinstance(a, CreatePod)}

    if max_surge == 0:
        # Nodes already without an available pod use up the budget first.
        unavailable = 0
        candidates: list[Pod] = []
        for node in eligible:
            pods = live.get(node, [])
            if node in planned_creates or not any(is_available(p, min_ready, now) for p in pods):
                unavailable += 1
                # An old pod that is not available anyway can go at no cost.
                for p in pods:
                    if not is_new(p):
                        plan.actions.append(DeletePod(p["metadata"]["name"], p["metadata"]["uid"]))
                continue
            candidates += [p for p in pods if not is_new(p)]
        budget = max_unavailable - unavailable
        for p in sorted(candidates, key=lambda p: node_of(p))[: max(budget, 0)]:
            plan.actions.append(DeletePod(p["metadata"]["name"], p["metadata"]["uid"]))
        return

    # maxSurge > 0: start a new pod beside the old one; drop the old once the new is available.
    surging = 0
    waiting: list[str] = []
    for node in eligible:
        pods = live.get(node, [])
        new = [p for p in pods if is_new(p)]
        old = [p for p in pods if not is_new(p)]
        if not old:
            continue
        if new:
            if any(is_available(p, min_ready, now) for p in new):
                for p in old:
                    plan.actions.append(DeletePod(p["metadata"]["name"], p["metadata"]["uid"]))
            else:
                surging += 1
        elif not any(is_available(p, min_ready, now) for p in old):
            for p in old:  # nothing available to protect: replace at once
                plan.actions.append(DeletePod(p["metadata"]["name"], p["metadata"]["uid"]))
        else:
            waiting.append(node)
    for node in waiting[: max(max_surge - surging, 0)]:
        plan.actions.append(CreatePod(node, current_hash))


def pod_for_node(ds: dict[str, Any], node: str, revision_hash: str) -> Pod:
    """The daemon pod for one node: aimed at it by node affinity on `metadata.name`."""
    meta, spec = ds["metadata"], ds.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    pod_spec["tolerations"] = daemon_tolerations(pod_spec)
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }
    labels = {
        **(tmeta.get("labels") or {}),
        history.HASH_LABEL: revision_hash,
        GENERATION_LABEL: str(meta.get("generation") or 1),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner_reference(ds)],
        },
        "spec": pod_spec,
    }


# -- the shell ---------------------------------------------------------------------


class DaemonSetController(Controller):
    name = "daemonset-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.daemonsets = ctx.informers.get("apps/v1", "DaemonSet")
        self.nodes = ctx.informers.get("v1", "Node")
        self.pods = ctx.informers.get("v1", "Pod")
        self.revisions = ctx.informers.get("apps/v1", "ControllerRevision")
        self.daemonsets.add_handlers(
            on_add=lambda d: self.enqueue(namespaced_key(d)),
            on_update=lambda _o, d: self.enqueue(namespaced_key(d)),
        )
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda _o, p: self._pod_changed(p),
            on_delete=self._pod_changed,
        )
        # A node that joins, leaves or changes labels or taints may change every DaemonSet.
        self.nodes.add_handlers(
            on_add=lambda _n: self._all(),
            on_update=self._node_updated,
            on_delete=lambda _n: self._all(),
        )

    def _pod_changed(self, pod: Pod) -> None:
        ref = controller_of(pod)
        if ref is not None and ref.get("kind") == "DaemonSet":
            self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")

    def _node_updated(self, old: Node, new: Node) -> None:
        def shape(n: Node) -> Any:
            return (n["metadata"].get("labels"), (n.get("spec") or {}).get("taints"))

        if shape(old) != shape(new):
            self._all()

    def _all(self) -> None:
        for ds in self.daemonsets.store.list():
            self.enqueue(namespaced_key(ds))

    async def reconcile(self, key: str) -> Result:
        ds = self.daemonsets.store.get(key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return Result.done()
        ns, uid = ds["metadata"]["namespace"], ds["metadata"]["uid"]
        revisions = [
            r
            for r in self.revisions.store.by_index("namespace", ns)
            if (controller_of(r) or {}).get("uid") == uid
        ]
        pods = [
            p
            for p in self.pods.store.by_index("namespace", ns)
            if (controller_of(p) or {}).get("uid") == uid
        ]
        current = history.plan_current(ds, revisions)
        nodes = self.nodes.store.list()
        plan = decide(ds, nodes, pods, current.hash, datetime.datetime.now(datetime.UTC))
        prefix = ds["metadata"]["name"]
        before, after = history.decide(
            current,
            revisions,
            {
                f"{prefix}-{(p['metadata'].get('labels') or {}).get(history.HASH_LABEL)}"
                for p in pods
            },
            limit=int(ds["spec"].get("revisionHistoryLimit", 10)),
        )
        actions = [*before, *plan.actions, *after]
        if actions:
            await self.apply(
                actions,
                ds,
                decide=decide,
                observed=f"{len(pods)} daemon pods on {len(nodes)} nodes",
                wanted=f"one pod of revision {current.hash} on each eligible node",
            )
        return Result(requeue_after=plan.requeue_after)

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            **history.HANDLERS,
            CreatePod: self._create_pod,
            DeletePod: self._delete_pod,
            UpdateStatus: self._update_status,
        }

    async def _create_pod(self, action: CreatePod, step: Step) -> None:
        ds = step.owner or {}
        try:
            created = await step.api.create(pod_for_node(ds, action.node, action.revision_hash))
        except errors.ApiError as e:
            step.event("Warning", "FailedCreate", f"Error creating: {e}")
            raise
        step.event("Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def _delete_pod(self, action: DeletePod, step: Step) -> None:
        if action.why:
            step.event("Warning", "FailedDaemonPod", action.why)
        await step.delete_pod(action.name, action.uid)

    async def _update_status(self, action: UpdateStatus, step: Step) -> None:
        meta = (step.owner or {})["metadata"]
        await step.api.patch(
            "apps/v1",
            "DaemonSet",
            meta["namespace"],
            meta["name"],
            {"status": action.status},
            sub="status",
        )
