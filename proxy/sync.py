"""The proxy's loop: keep this node's iptables equal to the render of the cluster's Services.

It reads like every skiff controller: informers on Services, EndpointSlices
and Nodes only record *what* changed and enqueue one key; one worker
reconciles it. The key is always the same (`sync`): the work queue holds a
key at most once, so a burst of 500 endpoint changes while a sync runs leaves
exactly one more sync to do. `min_sync_period` spaces syncs out as
kube-proxy's `--iptables-min-sync-period` does (changes arriving in that time
coalesce into the next sync).

A sync is kube-proxy's minimal restore:

- `ChangeTracker` remembers which Services (by namespace/name) changed, or
  whose EndpointSlices did, since the last sync;
- `decide(...)` (pure) re-renders only those Services' fragments, assembles
  the whole ruleset from cached fragments, and returns the restore text:
  everything on a full sync, only the chains that changed otherwise;
- the shell loads it with one `iptables-restore -w --noflush`.

So one endpoint change restores a handful of chains whether the cluster has
50 Services or 5,000. A full sync (every chain declared and rewritten, stale
chains of ours deleted, the jumps from the built-in chains checked) runs at
start, after any failure, and every `full_sync_period` (one hour, as
kube-proxy): a restarted proxy therefore converges to exactly the rules a
render of the cluster gives, whatever was there before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from client.controller import Context, Controller, Informers, Result
from client.trace import Record, current_reconcile

from . import rules
from .apply import Iptables
from .metrics import ProxyMetrics

log = logging.getLogger("skiff.proxy")

SYNC_KEY = "sync"
ServiceKey = tuple[str, str]  # (namespace, name)


def slice_service(obj: dict[str, Any]) -> ServiceKey | None:
    """The Service an EndpointSlice belongs to, by its `kubernetes.io/service-name` label."""
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(rules.SERVICE_NAME_LABEL)
    return (meta.get("namespace", ""), name) if name else None


def service_key(obj: dict[str, Any]) -> ServiceKey:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def slice_index(obj: dict[str, Any]) -> list[str]:
    """The index of EndpointSlices by the Service they belong to ("ns/name")."""
    key = slice_service(obj)
    return [f"{key[0]}/{key[1]}"] if key else []


class ProxyInformers(Informers):
    """The shared informers, with EndpointSlices also indexed by their Service, so a
    partial sync finds the slices of the Services that changed without a scan."""

    INDEXERS = {
        **Informers.INDEXERS,
        "EndpointSlice": {**Informers.INDEXERS.get("EndpointSlice", {}), "service": slice_index},
    }


@dataclass
class ChangeTracker:
    """Which Services (by namespace/name) changed, or whose EndpointSlices did, since
    the last sync. (A change of this node's addresses makes the next sync full.)

    Filled by informer handlers (no I/O, no decisions); emptied by a sync
    that succeeded. A failed sync keeps it, and the next one is full anyway.
    """

    services: set[ServiceKey] = field(default_factory=set)

    def service(self, obj: dict[str, Any]) -> None:
        self.services.add(service_key(obj))

    def endpoint_slice(self, obj: dict[str, Any]) -> None:
        key = slice_service(obj)
        if key:
            self.services.add(key)

    def take(self) -> set[ServiceKey]:
        taken, self.services = self.services, set()
        return taken


@dataclass
class Plan:
    """One sync, decided: the text to restore and the state it leaves behind."""

    text: str
    ruleset: Any  # rules.Ruleset, or nft_rules.Ruleset in the nftables mode
    fragments: dict[ServiceKey, Any]
    full: bool
    rerendered: int  # Services whose fragments were rendered again
    seconds: float = 0.0  # how long the sync took, once done


def decide(
    *,
    services: Mapping[ServiceKey, dict[str, Any]],
    slices_of: Callable[[ServiceKey], Iterable[dict[str, Any]]],
    node: rules.Node,
    fragments: Mapping[ServiceKey, rules.Fragment],
    applied: rules.Ruleset | None,
    changed: set[ServiceKey],
    existing: Mapping[str, Iterable[str]] | None = None,
) -> Plan:
    """The restore that brings the kernel from `applied` to the current render.

    `applied` None means a full sync: every Service re-rendered, every chain
    written, our chains in `existing` that are not used any more deleted.
    Otherwise only the `changed` Services are re-rendered and only chains
    whose rules differ from `applied` are named. Pure.
    """
    full = applied is None
    new_fragments = {} if full else dict(fragments)
    todo = services.keys() if full else changed
    for key in todo:
        svc = services.get(key)
        if svc is None:
            new_fragments.pop(key, None)
        else:
            new_fragments[key] = rules.service_fragment(svc, slices_of(key), node)
    if applied is None:
        ruleset = rules.assemble([new_fragments[k] for k in sorted(new_fragments)], node)
        text = rules.full_text(ruleset, existing=existing)
    else:
        ruleset, touched = rules.reassemble(applied, fragments, new_fragments, changed, node)
        text = rules.partial_text(applied, ruleset, only=touched)
    return Plan(text, ruleset, new_fragments, full, len(todo))


def wants_full_sync(
    *,
    synced: bool,
    node: rules.Node,
    last_node: rules.Node,
    since_full_sync: float,
    full_sync_period: float,
) -> bool:
    """A full sync (every chain rewritten, stale ones deleted, jumps checked): at start
    and after a failure (nothing is known to be loaded), when this node's addresses
    changed (every NodePort rule names them), and every full_sync_period, which
    repairs whatever someone else did to our chains meanwhile."""
    return not synced or node != last_node or since_full_sync >= full_sync_period


class Syncer:
    """What the kernel holds, as far as the proxy knows, and one sync at a time on it.

    Separate from the controller so that a benchmark or a test drives the very
    code the loop runs, without an apiserver. The sync itself (decide, load,
    remember what is loaded, or forget it all on a failure) is the same in both
    modes; nft_apply.NftSyncer overrides only how a plan is made and loaded.
    """

    tool = "iptables-restore --noflush"

    def __init__(self, iptables: Iptables, node: rules.Node, full_sync_period: float) -> None:
        self.iptables = iptables
        self._know_nothing(node, full_sync_period)

    def _know_nothing(self, node: rules.Node, full_sync_period: float) -> None:
        """The state before the first sync: nothing known to be loaded."""
        self.node = node
        self.full_sync_period = full_sync_period
        self.fragments: dict[ServiceKey, Any] = {}
        self.applied: Any = None  # None: the next sync is a full one
        self.last_full_sync = float("-inf")

    def next_is_full(self, node: rules.Node, now: float) -> bool:
        return wants_full_sync(
            synced=self.applied is not None,
            node=node,
            last_node=self.node,
            since_full_sync=now - self.last_full_sync,
            full_sync_period=self.full_sync_period,
        )

    def sync(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        slices: Mapping[ServiceKey, list[dict[str, Any]]],
    ) -> Plan:
        """Decide, then load (blocking: the kernel tools take a while at scale)."""
        started = time.monotonic()
        full = self.next_is_full(node, started)
        try:
            plan = self.plan(node, changed, services, slices, full)
            if plan.text:
                self.load(plan.text)
        except Exception:
            # Whatever made it into the kernel, the next sync rewrites it all.
            self.applied = None
            raise
        self.loaded(plan, changed)
        self.node, self.fragments, self.applied = node, plan.fragments, plan.ruleset
        if plan.full:
            self.last_full_sync = started
        plan.seconds = time.monotonic() - started
        return plan

    def plan(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        slices: Mapping[ServiceKey, list[dict[str, Any]]],
        full: bool,
    ) -> Plan:
        existing = None
        if full:  # a full sync also deletes stale chains and checks the jumps into ours
            existing = self.iptables.chains()
            self.iptables.ensure_jumps(existing)
        return decide(
            services=services,
            slices_of=lambda key: slices.get(key, ()),
            node=node,
            fragments=self.fragments,
            applied=None if full else self.applied,
            changed=changed,
            existing=existing,
        )

    def load(self, text: str) -> None:
        self.iptables.restore(text)

    def loaded(self, plan: Plan, changed: set[ServiceKey]) -> None:
        """After a successful load: anything the plan left to compute (nothing here)."""

    @staticmethod
    def rule_count(plan: Plan) -> dict[str, int]:
        return rules.rule_count(plan.ruleset)


class AnySyncer(Protocol):
    """What the loop needs of a syncer, whichever the mode."""

    tool: str
    applied: Any

    def next_is_full(self, node: rules.Node, now: float) -> bool: ...

    def sync(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        slices: Mapping[ServiceKey, list[dict[str, Any]]],
    ) -> Plan: ...

    def rule_count(self, plan: Plan) -> dict[str, int]: ...


@dataclass
class Settings:
    node_name: str
    cluster_cidr: str = "10.244.0.0/16"
    min_sync_period: float = 1.0  # kube-proxy's --iptables-min-sync-period
    sync_period: float = 30.0  # a sync at least this often (kube-proxy's --iptables-sync-period)
    full_sync_period: float = 3600.0  # kube-proxy's FullSyncPeriod


class ProxyController(Controller):
    """Services + EndpointSlices + this Node -> this node's iptables."""

    name = "proxy"
    workers = 1  # one sync at a time: the kernel's ruleset is one thing

    def __init__(
        self,
        ctx: Context,
        settings: Settings,
        iptables: Iptables | None,
        metrics: ProxyMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        syncer: AnySyncer | None = None,
    ) -> None:
        super().__init__(ctx)
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.changes = ChangeTracker()
        self.syncer: AnySyncer = syncer or Syncer(
            iptables or Iptables(),
            rules.Node(settings.node_name, (), settings.cluster_cidr),
            settings.full_sync_period,
        )
        self.last_sync = float("-inf")

        self.services = ctx.informers.get("v1", "Service")
        self.slices = ctx.informers.get("discovery.k8s.io/v1", "EndpointSlice")
        self.nodes = ctx.informers.get("v1", "Node")
        for informer, record in (
            (self.services, self.changes.service),
            (self.slices, self.changes.endpoint_slice),
        ):
            informer.add_handlers(
                on_add=self._recorder(record),
                on_update=self._recorder(record, both=True),
                on_delete=self._recorder(record),
            )
        self.nodes.add_handlers(
            on_add=self._node, on_update=lambda _old, new: self._node(new), on_delete=self._node
        )

    def _recorder(
        self, record: Callable[[dict[str, Any]], None], *, both: bool = False
    ) -> Callable[..., None]:
        """A handler that records what changed and asks for a sync. On an update
        both versions count: a slice relabelled to another Service changes two."""

        def handler(*objs: dict[str, Any]) -> None:
            for obj in objs if both else objs[:1]:
                record(obj)
            self._queue_sync()

        return handler

    def _node(self, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == self.settings.node_name:
            self._queue_sync()

    def _queue_sync(self) -> None:
        if self.metrics.queued_since is None:
            self.metrics.queued_since = time.time()  # what /healthz measures
        self.enqueue(SYNC_KEY)

    def _current_node(self) -> rules.Node:
        node = self.nodes.store.get(self.settings.node_name)
        if node is None:
            return rules.Node(self.settings.node_name, (), self.settings.cluster_cidr)
        return rules.node_from_api(node, cluster_cidr=self.settings.cluster_cidr)

    async def periodic(self) -> None:
        """A sync at least every sync_period, as kube-proxy's timer does."""
        while True:
            await asyncio.sleep(self.settings.sync_period)
            self.enqueue(SYNC_KEY)

    async def reconcile(self, key: str) -> Result:
        wait = self.last_sync + self.settings.min_sync_period - self.clock()
        if wait > 0:
            # Changes arriving meanwhile mark the key again; the queue keeps it once.
            await asyncio.sleep(wait)
        self.last_sync = self.clock()
        # Inputs are read here, on the event loop that the informers write from;
        # the render and the iptables calls then run in a thread.
        node = self._current_node()
        changed = self.changes.take()
        queued_since, self.metrics.queued_since = self.metrics.queued_since, None
        services = {service_key(s): s for s in self.services.store.list()}
        full = self.syncer.next_is_full(node, time.monotonic())
        if full:
            slices = rules.by_service(self.slices.store.list())
        else:  # only the changed Services are rendered again: only their slices matter
            slices = {
                key: self.slices.store.by_index("service", f"{key[0]}/{key[1]}") for key in changed
            }
        what = f"{'full' if full else 'partial'} sync, {len(changed)} Services changed"
        loop = getattr(self.ctx, "loop", None)
        if loop is not None:  # slow motion, pause and step hold the rules too
            await loop.gate(self.short_name, what)
        record = self._begin_trace(node, changed, services, what)
        try:
            plan = await asyncio.to_thread(self.sync_once, node, changed, services, slices)
        except Exception as e:
            self.changes.services |= changed  # tried again, fully, after the backoff
            self.metrics.queued_since = self.metrics.queued_since or queued_since
            if record is not None:
                record.actions[-1]["error"] = str(e)
            raise
        if record is not None:
            record.actions[-1]["calls"] = [
                f"{self.syncer.tool}: {plan.text.count(chr(10))} lines, "
                f"{plan.rerendered} Services re-rendered"
            ]
        return Result.done()

    def _begin_trace(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        what: str,
    ) -> Record | None:
        """A trace record for this sync (client/trace.py); the worker finishes it."""
        tracer, begun = getattr(self.ctx, "tracer", None), current_reconcile.get()
        if tracer is None or begun is None:
            return None
        names = ", ".join(sorted(f"{ns}/{name}" for ns, name in changed)[:10])
        record = tracer.begin(
            self.short_name,
            None,
            decide=decide,
            kind="Node",
            name=node.name,
            observed=f"{len(services)} Services; changed: {names or 'none'}",
            wanted="this node's iptables rules matching Services and ready endpoints",
        )
        record.actions.append({"action": f"SyncRules({what})", "calls": []})
        begun.append(record)
        return record

    def sync_once(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        slices: Mapping[ServiceKey, list[dict[str, Any]]],
    ) -> Plan:
        mode = "partial" if self.syncer.applied is not None else "full"
        try:
            plan = self.syncer.sync(node, changed, services, slices)
        except Exception:
            self.metrics.sync_failures.labels(mode).inc()
            raise
        self.metrics.synced(plan.seconds, plan.full, self.syncer.rule_count(plan))
        log.info(
            "%s sync: %d Services re-rendered, %d restore lines, %.3f s",
            "full" if plan.full else "partial",
            plan.rerendered,
            plan.text.count("\n"),
            plan.seconds,
        )
        return plan

    async def run(self) -> None:
        self._queue_sync()  # the full sync at start, even with no Service at all
        ticker = asyncio.create_task(self.periodic())
        try:
            await super().run()
        finally:
            ticker.cancel()
