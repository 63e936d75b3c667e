"""Loading the rendered ruleset into the kernel, atomically, next to everyone else's rules.

One sync is: make sure each jump from a built-in chain into ours exists once
(`iptables -C`, else `-I`: iptables-restore --noflush cannot test for a rule
in a chain it does not own), read which chains exist now (`iptables-save`,
so the render can delete our stale ones), then load the whole text with one
`iptables-restore -w --noflush`: either all of it applies or none does, and
`-w` waits for the xtables lock instead of failing beside another writer
(the runtime's hostPort rules, a firewall). Rules in chains we do not own are
never flushed or edited.

The backend is the one the node already uses, as kube-proxy's wrapper
chooses it: legacy when iptables-legacy holds more rules than nf_tables,
else nf_tables (Debian's default). `prefix` runs every command through e.g.
`nsenter --net=/run/netns/NAME`, which is how a test or a lab node aims the
proxy at one network namespace.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .rules import FILTER_CHAINS, JUMPS, NAT_CHAINS, OWNED_PREFIXES, Node, chains_in, render

log = logging.getLogger("skiff.proxy")
TABLES = ("filter", "nat")


class ApplyError(Exception):
    """iptables refused the ruleset; the message is its own, with the line it names."""


# What Services need from the node's kernel, as k3s's agent sets it at start:
# forwarding (a ClusterIP is DNATed to a pod behind the node's bridge, so the
# node routes it) and bridged traffic through iptables (the reply of a pod to
# a pod on the same bridge must meet conntrack to be un-DNATed).
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}


def ensure_sysctls(root: Path = Path("/proc/sys")) -> list[str]:
    """Set SYSCTLS (in the caller's network namespace); the ones it changed, as
    `name=value`. One whose file is absent (br_netfilter not loaded) is skipped:
    the proxy still works for traffic that is routed rather than bridged."""
    changed = []
    for name, value in SYSCTLS.items():
        path = root / name
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
                changed.append(f"{name.replace('/', '.')}={value}")
        except FileNotFoundError:
            log.warning("%s is absent (is br_netfilter loaded?)", name.replace("/", "."))
    return changed


def _rule_count(save_output: str) -> int:
    return sum(1 for line in save_output.splitlines() if line.startswith("-A "))


def detect_backend(prefix: Sequence[str] = ()) -> str:
    """ "legacy" or "nft": the one that holds the node's rules already (nft when unsure)."""
    counts = {}
    for backend in ("legacy", "nft"):
        tool = f"iptables-{backend}-save"
        if shutil.which(tool) is None:
            continue
        done = subprocess.run([*prefix, tool], capture_output=True, text=True, check=False)
        counts[backend] = _rule_count(done.stdout) if done.returncode == 0 else -1
    if counts.get("legacy", -1) > counts.get("nft", 0):
        return "legacy"
    return "nft"


@dataclass
class Iptables:
    """The iptables commands of one backend, run (through `prefix`) in one netns."""

    backend: str = ""  # "legacy", "nft", or "" for whatever `iptables` is
    prefix: Sequence[str] = field(default_factory=tuple)

    def tool(self, name: str) -> str:
        base = {"iptables": "iptables", "save": "iptables-save", "restore": "iptables-restore"}
        tool = base[name]
        if not self.backend:
            return tool
        return tool.replace("iptables", f"iptables-{self.backend}", 1)

    def run(self, name: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
        argv = [*self.prefix, self.tool(name), *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise ApplyError(f"{shlex.join(argv)}: {done.stderr.strip() or done.returncode}")
        return done.stdout

    def ok(self, *args: str) -> bool:
        argv = [*self.prefix, self.tool("iptables"), *args]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    def save(self) -> str:
        """Both tables skiff writes, in iptables-save's own format."""
        return "".join(self.run("save", "-t", table) for table in TABLES)

    def chains(self) -> dict[str, set[str]]:
        return chains_in(self.save())

    def restore(self, text: str) -> None:
        self.run("restore", "-w", "--noflush", stdin=text)

    def ensure_jumps(self, have: Mapping[str, set[str]] | None = None) -> None:
        """Each jump into our chains, once, at the head of its built-in chain.

        `have`: the chains that exist now, when the caller has just read them.
        """
        have = self.chains() if have is None else have
        for table in TABLES:  # a rule can only jump to a chain that exists
            ours = NAT_CHAINS if table == "nat" else FILTER_CHAINS
            missing = [c for c in ours if c not in have.get(table, set())]
            if missing:
                declare = [f"*{table}", *(f":{c} - [0:0]" for c in missing), "COMMIT", ""]
                self.restore("\n".join(declare))
        for table, chain, spec in JUMPS:
            args = shlex.split(spec)
            if not self.ok("-w", "-t", table, "-C", chain, *args):
                self.run("iptables", "-w", "-t", table, "-I", chain, *args)


def sync(
    services: Iterable[dict[str, Any]],
    slices: Iterable[dict[str, Any]],
    node: Node,
    iptables: Iptables,
    *,
    check_jumps: bool = True,
) -> str:
    """Render the whole ruleset and load it; the text loaded (for logs and /metrics).

    Checking the jumps costs a process per jump; a loop may do it on its full
    resyncs only (as kube-proxy does), since nothing of ours removes them.
    """
    existing = iptables.chains()
    if check_jumps:
        iptables.ensure_jumps(existing)
    text = render(services, slices, node, existing=existing)
    iptables.restore(text)
    return text


def cleanup(iptables: Iptables) -> None:
    """Remove every rule and chain the proxy owns (`skiff proxy --cleanup`, tests)."""
    for table, chain, spec in JUMPS:
        args = shlex.split(spec)
        while iptables.ok("-w", "-t", table, "-C", chain, *args):
            iptables.run("iptables", "-w", "-t", table, "-D", chain, *args)
    existing: Mapping[str, set[str]] = iptables.chains()
    lines = []
    for table in TABLES:
        fixed = NAT_CHAINS if table == "nat" else FILTER_CHAINS
        ours = sorted(
            c for c in existing.get(table, set()) if c in fixed or c.startswith(OWNED_PREFIXES)
        )
        if ours:
            lines += [f"*{table}", *(f":{c} - [0:0]" for c in ours)]
            lines += [*(f"-X {c}" for c in ours), "COMMIT"]
    if lines:
        iptables.restore("\n".join(lines) + "\n")
