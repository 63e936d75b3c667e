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
from dataclasses import dataclass
from typing import Any

from api.meta import parse_time
from api.taints import matching_toleration
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


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    workers = 1

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

    async def assign_cidr(self, node: dict[str, Any], key: str) -> None:
        """Occupy a CIDR first, then write it; a failed write frees it again."""
        cidr = self.cidrs.allocate(key)
        if cidr is None:
            await self.ctx.recorder.event(
                node, "Warning", "CIDRNotAvailable",
                f"Node {key}: no pod CIDR left in {self.settings.cluster_cidr}",
            )  # fmt: skip
            return
        try:
            await self.ctx.client.patch(
                "v1", "Node", "", key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
            )
        except Exception:
            self.cidrs.release(key)
            raise
        await self.ctx.recorder.event(
            node, "Normal", "CIDRAssigned", f"Node {key} gets pod CIDR {cidr}"
        )

    async def reconcile(self, key: str) -> Result:
        node = self.nodes.store.get(key)
        if node is None:
            return Result.done()
        api = self.ctx.client
        spec = node.get("spec") or {}
        if spec.get("podCIDR"):
            self.cidrs.occupy(key, spec["podCIDR"])
        else:
            await self.assign_cidr(node, key)
        now = datetime.datetime.now(datetime.UTC)
        lease = self.leases.store.get(f"kube-node-lease/{key}")
        ready_status, want = decide_health(node, lease, now, self.settings.grace_period)
        log.debug("node %s: lease=%s ready=%r taints=%r", key, bool(lease), ready_status, want)
        if ready_status:
            conditions = [
                c
                for c in (node.get("status") or {}).get("conditions") or []
                if c.get("type") != "Ready"
            ]
            conditions.append(
                {
                    "type": "Ready",
                    "status": ready_status,
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastHeartbeatTime": (_ready_condition(node) or {}).get("lastHeartbeatTime"),
                    "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            await api.patch(
                "v1", "Node", "", key, {"status": {"conditions": conditions}}, sub="status"
            )
            await self.ctx.recorder.event(
                node, "Normal", "NodeNotReady", f"Node {key} status is now: NodeNotReady"
            )
        current = [
            t
            for t in spec.get("taints") or []
            if t.get("key") in (UNREACHABLE, NOT_READY) and t.get("effect") == "NoExecute"
        ]
        if {t["key"] for t in current} != {t["key"] for t in want}:
            others = [t for t in spec.get("taints") or [] if t not in current]
            await api.patch("v1", "Node", "", key, {"spec": {"taints": others + want or None}})
        # Evict pods that do not (or no longer) tolerate the node's NoExecute taints.
        next_check: float | None = None
        if want:
            for pod in self.pods.store.by_index("node", key):
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                due = eviction_time(pod, want)
                if due is None:
                    continue
                wait = (due - now).total_seconds()
                if wait <= 0:
                    await api.delete(
                        "v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"]
                    )
                    await self.ctx.recorder.event(
                        pod,
                        "Normal",
                        "TaintManagerEviction",
                        f"Marking for deletion Pod "
                        f"{pod['metadata']['namespace']}/"
                        f"{pod['metadata']['name']}",
                    )
                else:
                    next_check = wait if next_check is None else min(next_check, wait)
        # Come back to check the lease again before the grace period could pass.
        period = min(self.settings.grace_period / 4, 5.0)
        return Result(requeue_after=min(next_check, period) if next_check else period)
