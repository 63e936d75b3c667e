"""hostPort mappings: DNAT from the node's port to the pod, in skiff's own nat chain.

Rules live in the SKIFF-HOSTPORTS chain (jumped to from PREROUTING and OUTPUT
for local destinations), each tagged with a comment naming its sandbox, and
are applied with one `iptables-restore --noflush`, atomically. Chains that
skiff does not own are never touched beyond the one jump rule.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
from dataclasses import dataclass

CHAIN = "SKIFF-HOSTPORTS"


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "TCP"


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check)


_chain_lock = threading.Lock()  # pods set up at once must not both add the chain


def ensure_chain() -> None:
    with _chain_lock:
        if _iptables("-t", "nat", "-S", CHAIN, check=False).returncode != 0:
            made = _iptables("-t", "nat", "-N", CHAIN, check=False)
            if made.returncode != 0 and "exists" not in made.stderr:  # another process won
                raise subprocess.CalledProcessError(made.returncode, made.args, made.stderr)
        for parent in ("PREROUTING", "OUTPUT"):
            jump = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", CHAIN]
            if _iptables("-t", "nat", "-C", parent, *jump, check=False).returncode != 0:
                _iptables("-t", "nat", "-A", parent, *jump)


def add_host_ports(sandbox_id: str, pod_ip: str, mappings: list[PortMapping]) -> None:
    if not mappings:
        return
    ensure_chain()
    lines = ["*nat"]
    for m in mappings:
        proto = m.protocol.lower()
        lines.append(
            f"-A {CHAIN} -p {proto} -m {proto} --dport {m.host_port} "
            f'-m comment --comment "skiff hostport {sandbox_id}" '
            f"-j DNAT --to-destination {pod_ip}:{m.container_port}"
        )
    lines.append("COMMIT\n")
    subprocess.run(
        ["iptables-restore", "-w", "--noflush"],
        input="\n".join(lines),
        text=True,
        check=True,
        capture_output=True,
    )


def remove_host_ports(sandbox_id: str) -> None:
    """Delete this sandbox's rules (found by their comment); idempotent."""
    listing = _iptables("-t", "nat", "-S", CHAIN, check=False)
    if listing.returncode != 0:
        return
    for rule in listing.stdout.splitlines():
        if rule.startswith("-A ") and f'"skiff hostport {sandbox_id}"' in rule:
            _iptables("-t", "nat", "-D", *shlex.split(rule[3:]))
