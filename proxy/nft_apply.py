"""Loading the nftables ruleset (`--proxy-mode nftables`): one `nft -f -` transaction per sync.

`nft -f` applies a whole file atomically, so a sync is one process and either
all of it applies or none does. Everything lives in the table `ip skiff`;
nothing else of the node's nftables (iptables-nft's tables, a firewall's) is
read or written. A full sync deletes and recreates the table in the same
transaction; a partial one names only the chains, sets and map elements of
the Services that changed (kube-proxy's nftables mode does the same), so the
kernel's work does not grow with the number of Services.

`prefix` runs nft through e.g. `nsenter --net=/run/netns/NAME`, as for the
iptables mode.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import nft_rules, rules
from .apply import ApplyError
from .sync import Plan, ServiceKey, wants_full_sync

log = logging.getLogger("skiff.proxy")


@dataclass
class Nft:
    """The nft command, run (through `prefix`) in one network namespace."""

    prefix: Sequence[str] = field(default_factory=tuple)

    def run(self, *args: str, stdin: str | None = None) -> str:
        argv = [*self.prefix, "nft", *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ApplyError(f"{shlex.join(argv)}: {done.stderr.strip() or done.returncode}")
        return done.stdout

    def load(self, text: str) -> None:
        """One transaction: all of `text` or nothing."""
        self.run("-f", "-", stdin=text)

    def save(self) -> str:
        """The table as `nft list` prints it (empty when there is none). Slow at scale
        (nft reads every chain and rule): for tests and users, never in a sync."""
        argv = [*self.prefix, "nft", "list", "table", nft_rules.FAMILY, nft_rules.TABLE]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.stdout if done.returncode == 0 else ""


def cleanup(nft: Nft) -> None:
    """Remove skiff's table, if there is one (`skiff proxy --cleanup`, a switch to the
    iptables mode). Adding it first makes the deletion succeed either way, and
    costs no listing of what the table holds."""
    nft.load(f"add table {nft_rules.T}\ndelete table {nft_rules.T}\n")


class NftSyncer:
    """The nftables counterpart of sync.Syncer: what the table holds, as far as the
    proxy knows, and one sync at a time on it (a benchmark or test drives it too)."""

    tool = "nft -f"

    def __init__(self, nft: Nft, node: rules.Node, full_sync_period: float) -> None:
        self.nft = nft
        self.node = node
        self.full_sync_period = full_sync_period
        self.fragments: dict[ServiceKey, nft_rules.Fragment] = {}
        self.applied: nft_rules.Ruleset | None = None  # None: the next sync is a full one
        self.last_full_sync = float("-inf")

    def next_is_full(self, node: rules.Node, now: float) -> bool:
        return wants_full_sync(
            synced=self.applied is not None,
            node=node,
            last_node=self.node,
            since_full_sync=now - self.last_full_sync,
            full_sync_period=self.full_sync_period,
        )

    def decide(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        slices: Mapping[ServiceKey, list[dict[str, Any]]],
        full: bool,
    ) -> Plan:
        """The transaction from what is applied to the current render. Pure."""
        fragments = {} if full else dict(self.fragments)
        todo = services.keys() if full else changed
        for key in todo:
            svc = services.get(key)
            if svc is None:
                fragments.pop(key, None)
            else:
                fragments[key] = nft_rules.service_fragment(svc, slices.get(key, ()), node)
        if not full and self.applied is not None:
            old = {k: self.fragments.get(k) or nft_rules.Fragment() for k in changed}
            new = {k: fragments.get(k) or nft_rules.Fragment() for k in changed}
            before = nft_rules.Ruleset(sets={n: t for f in old.values() for n, t in f.sets.items()})
            after = nft_rules.Ruleset(sets={n: t for f in new.values() for n, t in f.sets.items()})
            if not nft_rules.needs_full(before, after):
                text = nft_rules.delta_text(old, new, changed)
                # the ruleset is brought up to date in place once loaded (see sync)
                return Plan(text, None, fragments, False, len(todo))
            return self.decide(node, changed, services, slices, True)
        ruleset = nft_rules.assemble([fragments[k] for k in sorted(fragments)], node)
        text = nft_rules.full_text(ruleset, node)
        return Plan(text, ruleset, fragments, True, len(todo))

    def sync(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        slices: Mapping[ServiceKey, list[dict[str, Any]]],
    ) -> Plan:
        """Decide, then load (blocking: nft takes a while at scale)."""
        started = time.monotonic()
        full = self.next_is_full(node, started)
        try:
            plan = self.decide(node, changed, services, slices, full)
            if plan.text:
                self.nft.load(plan.text)
        except Exception:
            self.applied = None  # whatever made it in, the next sync rewrites it all
            raise
        if plan.ruleset is None:  # partial: what is loaded now, without copying it all
            assert self.applied is not None
            plan.ruleset = nft_rules.reassemble(
                self.applied, self.fragments, plan.fragments, changed, in_place=True
            )
        self.node, self.fragments, self.applied = node, plan.fragments, plan.ruleset
        if plan.full:
            self.last_full_sync = started
        plan.seconds = time.monotonic() - started
        return plan

    @staticmethod
    def rule_count(plan: Plan) -> dict[str, int]:
        return nft_rules.rule_count(plan.ruleset)
