"""Node lifecycle and IPAM: pod CIDRs for new nodes, and what happens when a node goes silent.

- IPAM: each Node without `spec.podCIDR` gets the next free /24 of
  `--cluster-cidr`; a CIDR is free again once its Node is gone. Which are
  taken is kept in memory (cidrset.py), not read from the informer cache,
  which lags behind our own writes.
- Health: a kubelet renews its Lease (kube-node-lease/<node>) every 10 s. A
  node whose Lease has not been renewed within `--node-monitor-grace-period`
  gets `Ready=Unknown` and the `node.kubernetes.io/unreachable:NoExecute`
  taint; a node reporting `Ready=False` gets `not-ready:NoExecute`. The
  taints go when the node is Ready again.
- Eviction: pods on a node with a NoExecute taint are deleted when they do
  not tolerate it, or when their `tolerationSeconds` have run out (the
  apiserver gives every pod 300 s for these two taints unless it says
  otherwise).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from typing import Any

from api.meta import parse_time
from api.taints import matching_toleration
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

from .cidrset import CIDRSet

log = logging.getLogger("skiff.controllers.nodelifecycle")

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


@dataclass(frozen=True)
class Settings:
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask: int = 24
    grace_period: float = 40.0


def _ready_condition(node: dict[str, Any]) -> dict[str, Any] | None:
    return next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )


def decide_health(
    node: dict[str, Any], lease: dict[str, Any] | None, now: datetime.datetime, grace: float
) -> tuple[str, list[dict[str, Any]]]:
    """(the Ready status to set, or "" to leave it; the NoExecute taints the node should have)."""
    ready = _ready_condition(node)
    heard = [
        parse_time((lease or {}).get("spec", {}).get("renewTime")),
        parse_time((ready or {}).get("lastHeartbeatTime")),
    ]
    last = max((t for t in heard if t is not None), default=None)
    if last is None:
        last = parse_time(node["metadata"].get("creationTimestamp"))
    silent = last is None or (now - last).total_seconds() > grace
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    existing = {
        t["key"]: t
        for t in (node.get("spec") or {}).get("taints") or []
        if t.get("effect") == "NoExecute"
    }
    if silent:
        taint = existing.get(UNREACHABLE) or {
            "key": UNREACHABLE,
            "effect": "NoExecute",
            "timeAdded": stamp,
        }
        return ("Unknown" if (ready or {}).get("status") != "Unknown" else ""), [taint]
    if ready is not None and ready.get("status") == "False":
        taint = existing.get(NOT_READY) or {
            "key": NOT_READY,
            "effect": "NoExecute",
            "timeAdded": stamp,
        }
        return "", [taint]
    return "", []


def eviction_time(pod: dict[str, Any], taints: list[dict[str, Any]]) -> datetime.datetime | None:
    """When the pod must go because of NoExecute taints (None: never)."""
    due: datetime.datetime | None = None
    for taint in taints:
        added = parse_time(taint.get("timeAdded")) or datetime.datetime.now(datetime.UTC)
        toleration = matching_toleration(pod, taint)
        if toleration is None:
            return added
        seconds = toleration.get("tolerationSeconds")
        if seconds is not None:
            when = added + datetime.timedelta(seconds=max(int(seconds), 0))
            due = when if due is None else min(due, when)
    return due


# -- actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class AssignCIDR:
    cidr: str


@dataclass(frozen=True)
class NoCIDRLeft:
    cluster_cidr: str


@dataclass(frozen=True)
class MarkReadyUnknown:
    """Ready=Unknown: the kubelet stopped posting node status."""

    last_heartbeat: str | None
    at: str


@dataclass(frozen=True)
class SetTaints:
    taints: tuple[tuple[str, str, str], ...]  # (key, effect, timeAdded) of skiff's NoExecute
    others: list[dict[str, Any]] = field(hash=False, default_factory=list)


@dataclass(frozen=True)
class EvictPod:
    namespace: str
    name: str


Action = AssignCIDR | NoCIDRLeft | MarkReadyUnknown | SetTaints | EvictPod


def decide(
    node: dict[str, Any],
    lease: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    now: datetime.datetime,
    *,
    grace: float,
    cidr: str | None,
    cluster_cidr: str = "",
) -> tuple[list[Action], float | None]:
    """Everything node lifecycle does for one Node, and when to look again.

    `cidr` is the pod CIDR the allocator holds or would give this Node (None:
    the cluster CIDR is used up). A Node without `spec.podCIDR` gets it; a
    silent Node gets Ready=Unknown and the unreachable taint, a NotReady one the
    not-ready taint; pods on a tainted Node that do not tolerate the taint (or
    whose tolerationSeconds ran out) are evicted. The float is the seconds
    until the next pod's tolerationSeconds run out (None: none waiting).
    """
    spec = node.get("spec") or {}
    actions: list[Action] = []
    if not spec.get("podCIDR"):
        actions.append(AssignCIDR(cidr) if cidr else NoCIDRLeft(cluster_cidr))
    ready_status, want = decide_health(node, lease, now, grace)
    if ready_status:
        actions.append(
            MarkReadyUnknown(
                (_ready_condition(node) or {}).get("lastHeartbeatTime"),
                now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        )
    current = [
        t
        for t in spec.get("taints") or []
        if t.get("key") in (UNREACHABLE, NOT_READY) and t.get("effect") == "NoExecute"
    ]
    if {t["key"] for t in current} != {t["key"] for t in want}:
        others = [t for t in spec.get("taints") or [] if t not in current]
        actions.append(
            SetTaints(tuple((t["key"], t["effect"], t.get("timeAdded", "")) for t in want), others)
        )
    next_check: float | None = None
    if want:
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            due = eviction_time(pod, want)
            if due is None:
                continue
            wait = (due - now).total_seconds()
            if wait <= 0:
                actions.append(EvictPod(pod["metadata"]["namespace"], pod["metadata"]["name"]))
            else:
                next_check = wait if next_check is None else min(next_check, wait)
    return actions, next_check


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    workers = 1  # one worker: the CIDR decide() picks is still free when its handler takes it

    def __init__(self, ctx: Context, settings: Settings | None = None) -> None:
        super().__init__(ctx)
        self.settings = settings or Settings()
        self.nodes = ctx.informers.get("v1", "Node")
        self.leases = ctx.informers.get("coordination.k8s.io/v1", "Lease")
        self.pods = ctx.informers.get("v1", "Pod")
        self.cidrs = CIDRSet(self.settings.cluster_cidr, self.settings.node_cidr_mask)
        self.nodes.add_handlers(
            on_add=lambda n: self.enqueue(n["metadata"]["name"]),
            on_update=lambda _o, n: self.enqueue(n["metadata"]["name"]),
            on_delete=lambda n: self.cidrs.release(n["metadata"]["name"]),
        )

    def occupy_existing(self) -> None:
        """Rebuild the allocated set from every Node's podCIDR (after a restart)."""
        for node in self.nodes.store.list():
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                self.cidrs.occupy(node["metadata"]["name"], cidr)

    async def run(self) -> None:
        await self.ctx.informers.wait_for_sync()
        self.occupy_existing()  # before the first reconcile, as the range allocator does
        await super().run()

    async def reconcile(self, key: str) -> Result:
        node = self.nodes.store.get(key)
        if node is None:
            return Result.done()
        spec = node.get("spec") or {}
        if spec.get("podCIDR"):
            self.cidrs.occupy(key, spec["podCIDR"])
        now = datetime.datetime.now(datetime.UTC)
        lease = self.leases.store.get(f"kube-node-lease/{key}")
        actions, next_check = decide(
            node,
            lease,
            self.pods.store.by_index("node", key),
            now,
            grace=self.settings.grace_period,
            cidr=self.cidrs.peek(key),
            cluster_cidr=self.settings.cluster_cidr,
        )
        log.debug("node %s: lease=%s actions=%r", key, bool(lease), actions)
        if actions:
            renewed = ((lease or {}).get("spec") or {}).get("renewTime") or "never"
            await self.apply(
                actions,
                node,
                decide=decide,
                observed=f"lease renewed {renewed}, podCIDR {spec.get('podCIDR') or 'none'}",
                wanted=f"a pod CIDR; heard from within {self.settings.grace_period:g}s",
            )
        # Come back to check the lease again before the grace period could pass.
        period = min(self.settings.grace_period / 4, 5.0)
        return Result(requeue_after=min(next_check, period) if next_check else period)

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            AssignCIDR: self._assign_cidr,
            NoCIDRLeft: self._no_cidr_left,
            MarkReadyUnknown: self._mark_ready_unknown,
            SetTaints: self._set_taints,
            EvictPod: self._evict_pod,
        }

    async def _assign_cidr(self, action: AssignCIDR, step: Step) -> None:
        """Occupy the CIDR first, then write it; a failed write frees it again."""
        key = (step.owner or {})["metadata"]["name"]
        self.cidrs.occupy(key, action.cidr)
        try:
            await step.api.patch(
                "v1", "Node", "", key, {"spec": {"podCIDR": action.cidr, "podCIDRs": [action.cidr]}}
            )
        except Exception:
            self.cidrs.release(key)
            raise
        step.event("Normal", "CIDRAssigned", f"Node {key} gets pod CIDR {action.cidr}")

    async def _no_cidr_left(self, action: NoCIDRLeft, step: Step) -> None:
        key = (step.owner or {})["metadata"]["name"]
        step.event(
            "Warning", "CIDRNotAvailable", f"Node {key}: no pod CIDR left in {action.cluster_cidr}"
        )

    async def _mark_ready_unknown(self, action: MarkReadyUnknown, step: Step) -> None:
        node = step.owner or {}
        key = node["metadata"]["name"]
        conditions = [
            c
            for c in (node.get("status") or {}).get("conditions") or []
            if c.get("type") != "Ready"
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": action.last_heartbeat,
                "lastTransitionTime": action.at,
            }
        )
        await step.api.patch(
            "v1", "Node", "", key, {"status": {"conditions": conditions}}, sub="status"
        )
        step.event("Normal", "NodeNotReady", f"Node {key} status is now: NodeNotReady")

    async def _set_taints(self, action: SetTaints, step: Step) -> None:
        key = (step.owner or {})["metadata"]["name"]
        want = [{"key": k, "effect": e, "timeAdded": t} for k, e, t in action.taints]
        await step.api.patch(
            "v1", "Node", "", key, {"spec": {"taints": action.others + want or None}}
        )
        names = ", ".join(k for k, _, _ in action.taints) or "none"
        step.event("Normal", "TaintsChanged", f"Node {key} NoExecute taints now: {names}")

    async def _evict_pod(self, action: EvictPod, step: Step) -> None:
        await step.api.delete("v1", "Pod", action.namespace, action.name)
        pod = self.pods.store.get(f"{action.namespace}/{action.name}") or {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": action.name, "namespace": action.namespace},
        }
        step.event(
            "Normal",
            "TaintManagerEviction",
            f"Marking for deletion Pod {action.namespace}/{action.name}",
            on=pod,
        )
