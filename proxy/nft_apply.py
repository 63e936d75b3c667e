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

import json
import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import nft_rules, rules
from .apply import ApplyError
from .sync import Plan, ServiceKey, Syncer

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

    def existing(self) -> nft_rules.Existing:
        """skiff's chains and sets as the kernel holds them (none when there is no
        table): names only, so it stays cheap at 25,000 chains, unlike `save`."""
        chains: set[str] = set()
        sets: dict[str, int | None] = {}
        for kind in ("chains", "sets"):
            listed = json.loads(self.run("-j", "list", kind, nft_rules.FAMILY) or "{}")
            for item in listed.get("nftables", ()):
                obj = item.get(kind[:-1])
                if not obj or obj.get("table") != nft_rules.TABLE:
                    continue
                if kind == "chains":
                    chains.add(obj["name"])
                else:
                    sets[obj["name"]] = obj.get("timeout")
        return nft_rules.Existing(frozenset(chains), sets)


def cleanup(nft: Nft) -> None:
    """Remove skiff's table, if there is one (`skiff proxy --cleanup`, a switch to the
    iptables mode). Adding it first makes the deletion succeed either way, and
    costs no listing of what the table holds."""
    nft.load(f"add table {nft_rules.T}\ndelete table {nft_rules.T}\n")


class NftSyncer(Syncer):
    """The nftables counterpart of sync.Syncer: the same sync, with plans made by
    nft_rules and loaded by `nft -f`."""

    tool = "nft -f"

    def __init__(self, nft: Nft, node: rules.Node, full_sync_period: float) -> None:
        self.nft = nft
        self._know_nothing(node, full_sync_period)

    def plan(
        self,
        node: rules.Node,
        changed: set[ServiceKey],
        services: Mapping[ServiceKey, dict[str, Any]],
        slices: Mapping[ServiceKey, list[dict[str, Any]]],
        full: bool,
    ) -> Plan:
        """The transaction from what is applied to the current render. A full one
        first lists what the table holds (kube-proxy does too), so that it can keep
        the affinity sets' members and delete what is stale."""
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
            return self.plan(node, changed, services, slices, True)
        ruleset = nft_rules.assemble([fragments[k] for k in sorted(fragments)], node)
        text = nft_rules.full_text(ruleset, node, self.nft.existing())
        return Plan(text, ruleset, fragments, True, len(todo))

    def load(self, text: str) -> None:
        self.nft.load(text)

    def loaded(self, plan: Plan, changed: set[ServiceKey]) -> None:
        if plan.ruleset is None:  # partial: what is loaded now, without copying it all
            assert self.applied is not None
            plan.ruleset = nft_rules.reassemble(
                self.applied, self.fragments, plan.fragments, changed, in_place=True
            )

    @staticmethod
    def rule_count(plan: Plan) -> dict[str, int]:
        return nft_rules.rule_count(plan.ruleset)
