"""The service proxy's nftables ruleset (`--proxy-mode nftables`), rendered by pure functions.

Laid out as kube-proxy's nftables mode lays it out, in one table skiff owns
(`ip skiff`) and touches nothing else:

    nat-prerouting, nat-output (nat hooks, -100) -> services
    services:  ip daddr . meta l4proto . th dport vmap @service-ips
               ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
    service-ips:       clusterIP . tcp . 80 -> goto service-<hash>-ns/svc/tcp/port
                       externalIP/LB IP . tcp . 80 -> goto external-<hash>-...
    service-nodeports: tcp . 30080 -> goto external-<hash>-...
    service-<...>:  off-cluster source -> mark-for-masquerade;
                    ip saddr @affinity-<...> goto endpoint-<...> (ClientIP affinity);
                    numgen random mod n vmap { 0 : goto endpoint-..., ... }
    endpoint-<...>: its own address as source (hairpin) -> mark-for-masquerade;
                    update @affinity-<...> { ip saddr }; dnat to podIP:port
    nat-postrouting (100) -> masquerading: masquerade what was marked, once
    filter-input/forward/output (filter hooks, -110), new connections:
        ip daddr . meta l4proto . th dport vmap @no-endpoint-services
        (and @no-endpoint-nodeports on node addresses) -> goto reject-chain / drop

So a packet costs two hash lookups whatever the number of Services (the
iptables mode walks SKIFF-SERVICES rule by rule). Chain names are
kube-proxy's: an 8-character base32 hash of the service port, then the
readable name (nft allows 256 characters). NodePorts answer on the node's
addresses, not on 127.0.0.1, as in kube-proxy's nftables mode.

`Ruleset`/`Fragment` hold chains, map elements and affinity sets; the sync
loop caches one Fragment per Service, and `partial_text` writes only the
chains, elements and sets of the Services that changed, so that one endpoint
change is a small transaction at 5,000 Services as at 50. `full_text` rewrites
the whole table in one transaction (`nft -f` applies a file atomically), so a
restarted proxy converges to exactly what a render gives. Told what the table
holds (`Existing`, listed by the shell), it does it as kube-proxy does:
flushes every chain and map, writes them again, deletes what is no longer
rendered, and keeps the ClientIP affinity sets with their members, so a full
sync (once an hour, or at a restart) does not balance a stuck client anew.
Not told, it deletes and recreates the table.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .rules import (
    Endpoint,
    Node,
    ServicePort,
    _is_ipv4,
    by_service,
    ready_endpoints,
    service_ports,
)

FAMILY, TABLE = "ip", "skiff"
T = f"{FAMILY} {TABLE}"  # how every command names the table
MASQ_MARK = "0x4000"  # kube-proxy's default masquerade bit, as the iptables mode
CHAIN_MAX = 256  # nft's NFT_CHAIN_MAXNAMELEN

# Maps: name -> its type. Keys are written as nft writes them ("10.96.0.1 . tcp . 80").
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
MAPS = {
    SERVICE_IPS: "ipv4_addr . inet_proto . inet_service : verdict",
    SERVICE_NODEPORTS: "inet_proto . inet_service : verdict",
    NO_ENDPOINT_SERVICES: "ipv4_addr . inet_proto . inet_service : verdict",
    NO_ENDPOINT_NODEPORTS: "inet_proto . inet_service : verdict",
}
NODEPORT_IPS = "nodeport-ips"  # a set: this node's addresses

# Fixed chains (name -> base chain spec, "" for a regular chain), in the order written.
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"
SERVICES = "services"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
REJECT_CHAIN = "reject-chain"
BASE_CHAINS = {
    "filter-input": "type filter hook input priority -110 ;",
    "filter-forward": "type filter hook forward priority -110 ;",
    "filter-output": "type filter hook output priority -110 ;",
    "nat-prerouting": "type nat hook prerouting priority -100 ;",
    "nat-output": "type nat hook output priority -100 ;",
    "nat-postrouting": "type nat hook postrouting priority 100 ;",
}
FIXED_CHAINS = (
    *BASE_CHAINS,
    MARK_MASQ,
    MASQUERADING,
    SERVICES,
    SERVICE_ENDPOINTS_CHECK,
    NODEPORT_ENDPOINTS_CHECK,
    REJECT_CHAIN,
)

SERVICE_PREFIX = "service-"  # a service port, over all ready endpoints
LOCAL_PREFIX = "local-"  # a service port, over this node's ready endpoints only
EXTERNAL_PREFIX = "external-"  # traffic from outside to a NodePort, external or LB IP
ENDPOINT_PREFIX = "endpoint-"  # one endpoint
AFFINITY_PREFIX = "affinity-"  # the set of clients stuck to one endpoint


@dataclass
class Ruleset:
    """Chains (name -> rules in order), map elements (map -> key -> verdict) and
    affinity sets (name -> timeout seconds). A Fragment (one Service's part) has
    the same shape, holding only its own chains, sets and elements."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    sets: dict[str, int] = field(default_factory=dict)


Fragment = Ruleset


@functools.lru_cache(maxsize=1 << 16)
def _name(prefix: str, base: str) -> str:
    """kube-proxy's hashAndTruncate: base32(sha256(base))[:8] + "-" + base, within 256."""
    digest = base64.b32encode(hashlib.sha256(base.encode()).digest()[:5]).decode()
    name = f"{prefix}{digest}-{base}"
    return name if len(name) <= CHAIN_MAX else name[: CHAIN_MAX - 3] + "..."


def _base(sp: ServicePort) -> str:
    """kube-proxy's servicePortChainNameBase: ns/name/protocol/portname."""
    return f"{sp.namespace}/{sp.service}/{sp.protocol}/{sp.port_name}"


def _ep_base(sp: ServicePort, ep: Endpoint) -> str:
    return f"{_base(sp)}__{ep.ip}/{ep.port}"


def service_chain(sp: ServicePort) -> str:
    return _name(SERVICE_PREFIX, _base(sp))


def local_chain(sp: ServicePort) -> str:
    return _name(LOCAL_PREFIX, _base(sp))


def external_chain(sp: ServicePort) -> str:
    return _name(EXTERNAL_PREFIX, _base(sp))


def endpoint_chain(sp: ServicePort, ep: Endpoint) -> str:
    return _name(ENDPOINT_PREFIX, _ep_base(sp, ep))


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    return _name(AFFINITY_PREFIX, _ep_base(sp, ep))


def _to_endpoints(frag: Fragment, sp: ServicePort, chain: str, endpoints: list[Endpoint]) -> None:
    """From a service chain to its endpoints: sticky clients first, then at random."""
    rules = frag.chains[chain]
    if sp.affinity_seconds is not None:
        for ep in endpoints:
            rules.append(f"ip saddr @{affinity_set(sp, ep)} goto {endpoint_chain(sp, ep)}")
    if len(endpoints) == 1:
        rules.append(f"goto {endpoint_chain(sp, endpoints[0])}")
    else:
        choices = " , ".join(
            f"{i} : goto {endpoint_chain(sp, ep)}" for i, ep in enumerate(endpoints)
        )
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")


def _service_port(frag: Fragment, sp: ServicePort, endpoints: list[Endpoint], node: Node) -> None:
    """Every chain, set and map element of one service port, as kube-proxy writes them."""
    local = [e for e in endpoints if e.node_name == node.name]
    internal = local if sp.internal_local else endpoints
    external = local if sp.external_local else endpoints
    cluster, local_ch = service_chain(sp), local_chain(sp)
    internal_chain = local_ch if sp.internal_local else cluster
    external_policy_chain = local_ch if sp.external_local else cluster
    uses_cluster = bool(endpoints) and (not sp.internal_local or sp.externally_accessible)
    uses_local = bool(local) and (
        sp.internal_local or (sp.external_local and sp.externally_accessible)
    )
    uses_external = bool(endpoints) and sp.externally_accessible
    # Without endpoints a connection is refused at once; with endpoints elsewhere
    # only (a Local policy), it is dropped, as kube-proxy does.
    no_internal = f"goto {REJECT_CHAIN}" if not endpoints else "drop"
    no_external = no_internal
    maps = frag.maps
    for m in MAPS:
        maps.setdefault(m, {})

    for chain, used in ((cluster, uses_cluster), (local_ch, uses_local)):
        if used:
            frag.chains[chain] = []
    if uses_external:
        frag.chains[external_chain(sp)] = []

    key = f"{sp.cluster_ip} . {sp.protocol} . {sp.port}"
    if internal:
        maps[SERVICE_IPS][key] = f"goto {internal_chain}"
    else:
        maps[NO_ENDPOINT_SERVICES][key] = no_internal

    for ip in (*sp.external_ips, *sp.load_balancer_ips):
        key = f"{ip} . {sp.protocol} . {sp.port}"
        if uses_external:
            maps[SERVICE_IPS].setdefault(key, f"goto {external_chain(sp)}")
        if not external:
            maps[NO_ENDPOINT_SERVICES].setdefault(key, no_external)

    if sp.node_port:
        key = f"{sp.protocol} . {sp.node_port}"
        if uses_external:
            maps[SERVICE_NODEPORTS][key] = f"goto {external_chain(sp)}"
        if not external:
            maps[NO_ENDPOINT_NODEPORTS][key] = no_external

    if uses_external:
        rules = frag.chains[external_chain(sp)]
        if not sp.external_local:
            rules.append(f"jump {MARK_MASQ}")
        else:
            if node.cluster_cidr:
                # A pod reaching a NodePort: as if it went out to a load balancer and back.
                rules.append(f"ip saddr {node.cluster_cidr} goto {cluster}")
            # The node itself: its source is a local address, which must be masqueraded.
            rules.append(f"fib saddr type local jump {MARK_MASQ}")
            rules.append(f"fib saddr type local goto {cluster}")
        if external:
            rules.append(f"goto {external_policy_chain}")

    if uses_cluster:
        if node.cluster_cidr:
            # Off-cluster traffic to a ClusterIP may leave through another node: masquerade it.
            frag.chains[cluster].append(
                f"ip daddr {sp.cluster_ip} {sp.protocol} dport {sp.port}"
                f" ip saddr != {node.cluster_cidr} jump {MARK_MASQ}"
            )
        _to_endpoints(frag, sp, cluster, endpoints)
    if uses_local:
        if node.cluster_cidr and sp.internal_local:
            frag.chains[local_ch].append(
                f"ip daddr {sp.cluster_ip} {sp.protocol} dport {sp.port}"
                f" ip saddr != {node.cluster_cidr} jump {MARK_MASQ}"
            )
        _to_endpoints(frag, sp, local_ch, local)

    for ep in endpoints:
        # Hairpin: a pod reaching itself through its Service must see the reply
        # come from the service address, so the node masquerades it.
        rules = [f"ip saddr {ep.ip} jump {MARK_MASQ}"]
        if sp.affinity_seconds is not None:
            name = affinity_set(sp, ep)
            frag.sets[name] = sp.affinity_seconds
            rules.append(f"update @{name} {{ ip saddr }}")
        rules.append(f"meta l4proto {sp.protocol} dnat to {ep}")
        frag.chains[endpoint_chain(sp, ep)] = rules


def service_fragment(
    service: dict[str, Any], slices: Iterable[dict[str, Any]], node: Node
) -> Fragment:
    """Every chain, set and map element of one Service: what the sync loop caches."""
    frag = Fragment(maps={m: {} for m in MAPS})
    slices = list(slices)
    for sp in service_ports(service):
        _service_port(frag, sp, ready_endpoints(sp, slices), node)
    return frag


def node_ips(node: Node) -> list[str]:
    """Where NodePorts answer: the node's addresses, never loopback (as kube-proxy's nft mode)."""
    return [a for a in node.addresses if _is_ipv4(a) and not ipaddress.ip_address(a).is_loopback]


def fixed_chains(node: Node) -> dict[str, list[str]]:
    """The chains every ruleset has, with their rules."""
    if node_ips(node):
        to_node = f"ip daddr @{NODEPORT_IPS}"
    else:  # no address known yet: every local one but loopback
        to_node = "fib daddr type local ip daddr != 127.0.0.0/8"
    return {
        "filter-input": [
            f"ct state new jump {NODEPORT_ENDPOINTS_CHECK}",
            f"ct state new jump {SERVICE_ENDPOINTS_CHECK}",
        ],
        "filter-forward": [f"ct state new jump {SERVICE_ENDPOINTS_CHECK}"],
        "filter-output": [f"ct state new jump {SERVICE_ENDPOINTS_CHECK}"],
        "nat-prerouting": [f"jump {SERVICES}"],
        "nat-output": [f"jump {SERVICES}"],
        "nat-postrouting": [f"jump {MASQUERADING}"],
        MARK_MASQ: [f"meta mark set meta mark or {MASQ_MARK}"],
        # Masquerade what was marked, once (the mark is cleared so that a packet
        # that goes round again is not masqueraded twice).
        MASQUERADING: [
            f"meta mark & {MASQ_MARK} == 0 return",
            f"meta mark set meta mark xor {MASQ_MARK}",
            "masquerade fully-random",
        ],
        SERVICES: [
            f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
            f"{to_node} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
        ],
        SERVICE_ENDPOINTS_CHECK: [
            f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
        ],
        NODEPORT_ENDPOINTS_CHECK: [
            f"{to_node} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
        ],
        REJECT_CHAIN: ["reject"],
    }


def _merge(into: Ruleset, frag: Fragment) -> None:
    into.chains.update(frag.chains)
    into.sets.update(frag.sets)
    for m, elements in frag.maps.items():
        target = into.maps.setdefault(m, {})
        for key, verdict in elements.items():
            target.setdefault(key, verdict)  # the first Service (in name order) keeps a key


def assemble(fragments: Iterable[Fragment], node: Node) -> Ruleset:
    """The whole ruleset from every Service's fragment (the caller orders them by name)."""
    out = Ruleset(chains=fixed_chains(node), maps={m: {} for m in MAPS})
    for frag in fragments:
        _merge(out, frag)
    return out


def build(
    services: Iterable[dict[str, Any]], slices: Iterable[dict[str, Any]], node: Node
) -> Ruleset:
    grouped = by_service(slices)
    ordered = sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"]))
    return assemble(
        (
            service_fragment(
                s, grouped.get((s["metadata"]["namespace"], s["metadata"]["name"]), []), node
            )
            for s in ordered
        ),
        node,
    )


def _chain_decl(name: str) -> str:
    spec = BASE_CHAINS.get(name)
    return f"add chain {T} {name}" + (f" {{ {spec} }}" if spec else "")


def _set_decl(name: str, timeout: int) -> str:
    return f"add set {T} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"


def _elements(verb: str, name: str, items: Iterable[str], chunk: int = 1000) -> list[str]:
    """`add element` / `delete element` lines, many elements each (one per item is slow)."""
    items = list(items)
    return [
        f"{verb} element {T} {name} {{ {' , '.join(items[i : i + chunk])} }}"
        for i in range(0, len(items), chunk)
    ]


def _order(chains: Iterable[str]) -> list[str]:
    """Chains to write, the ones others jump to first (endpoints before services)."""
    rank = {ENDPOINT_PREFIX: 0, SERVICE_PREFIX: 1, LOCAL_PREFIX: 1, EXTERNAL_PREFIX: 2}
    return sorted(
        chains, key=lambda c: (next((r for p, r in rank.items() if c.startswith(p)), 3), c)
    )


@dataclass(frozen=True)
class Existing:
    """What the kernel's table holds before a full sync: its chains, and its sets
    with their timeouts (None: a set without one), as `nft -j list` gives them."""

    chains: frozenset[str] = frozenset()
    sets: Mapping[str, int | None] = field(default_factory=dict)


def full_text(ruleset: Ruleset, node: Node, existing: Existing | None = None) -> str:
    """The whole table as `nft -f` input, in one transaction, so nothing of a previous
    ruleset survives. With `existing` (what the table holds now), every chain and map
    is flushed and written again, what is no longer rendered is deleted, and affinity
    sets are kept with their members (one whose timeout changed is made anew: nft
    cannot change it in place). Without it, the table is deleted and made anew."""
    if existing is None:
        lines = [f"add table {T}", f"delete table {T}", f"add table {T}"]
    else:  # no rule names a set or chain once the table is flushed: all may go
        lines = [f"add table {T}", f"flush table {T}"]
    lines += [f"add map {T} {m} {{ type {t} ; }}" for m, t in MAPS.items()]
    lines.append(f"add set {T} {NODEPORT_IPS} {{ type ipv4_addr ; }}")
    if existing is not None:
        lines += [f"flush map {T} {m}" for m in MAPS]
        lines.append(f"flush set {T} {NODEPORT_IPS}")
    lines += _elements("add", NODEPORT_IPS, node_ips(node))
    if existing is not None:
        lines += [
            f"delete set {T} {name}"
            for name, timeout in sorted(existing.sets.items())
            if name != NODEPORT_IPS and ruleset.sets.get(name, timeout) != timeout
        ]
    lines += [_set_decl(name, t) for name, t in sorted(ruleset.sets.items())]
    fixed = [c for c in FIXED_CHAINS if c in ruleset.chains]
    others = _order(c for c in ruleset.chains if c not in BASE_CHAINS and c not in fixed)
    lines += [_chain_decl(c) for c in [*fixed, *others]]
    for chain in [*others, *(c for c in fixed if c not in BASE_CHAINS), *BASE_CHAINS]:
        lines += [f"add rule {T} {chain} {r}" for r in ruleset.chains.get(chain, ())]
    for m, elements in ruleset.maps.items():
        lines += _elements("add", m, (f"{k} : {v}" for k, v in elements.items()))
    if existing is not None:
        stale = existing.chains - ruleset.chains.keys() - BASE_CHAINS.keys()
        lines += [f"delete chain {T} {c}" for c in sorted(stale)]
        lines += [
            f"delete set {T} {name}"
            for name in sorted(existing.sets)
            if name != NODEPORT_IPS and name not in ruleset.sets
        ]
    return "\n".join(lines) + "\n"


def reassemble(
    applied: Ruleset,
    old: Mapping[Any, Fragment],
    new: Mapping[Any, Fragment],
    changed: Iterable[Any],
    *,
    in_place: bool = False,
) -> Ruleset:
    """The ruleset after swapping the `changed` Services' fragments in `applied`
    (what `assemble` of the new fragments gives, when no two Services claim one
    map key). `in_place`: change `applied` itself (the sync loop does, once the
    transaction is loaded: copying 25,000 chains costs more than the change)."""
    out = applied
    if not in_place:
        out = Ruleset(
            chains=dict(applied.chains),
            maps={m: dict(e) for m, e in applied.maps.items()},
            sets=dict(applied.sets),
        )
    changed = list(changed)
    for key in changed:
        before, after = old.get(key) or Fragment(), new.get(key) or Fragment()
        for chain in before.chains:
            out.chains.pop(chain, None)
        for name in before.sets:
            out.sets.pop(name, None)
        for m, elements in before.maps.items():
            for k, v in elements.items():
                if out.maps.get(m, {}).get(k) == v:
                    del out.maps[m][k]
    for key in changed:
        after = new.get(key)
        if after is not None:
            _merge(out, after)
    return out


def partial_text(applied: Ruleset, desired: Ruleset) -> str:
    """Only what differs from `applied`, as one `nft -f` transaction: new sets and
    chains added, changed chains flushed and written again, map elements deleted
    and added, chains and sets no longer used flushed and deleted (after the
    elements and rules that named them are gone). Empty when nothing changed.
    (A changed affinity timeout cannot be written so: see `needs_full`.)

    Compares chains by identity first: `reassemble` keeps the unchanged ones as
    the very same lists, so 25,000 chains are not compared rule by rule."""
    lines: list[str] = []
    new_sets = [s for s in desired.sets if s not in applied.sets]
    gone_sets = [s for s in applied.sets if s not in desired.sets]
    lines += [_set_decl(s, desired.sets[s]) for s in sorted(new_sets)]

    added = [c for c in desired.chains if c not in applied.chains]
    changed = [
        c
        for c, rules in desired.chains.items()
        if c in applied.chains and applied.chains[c] is not rules and applied.chains[c] != rules
    ]
    gone = [c for c in applied.chains if c not in desired.chains]
    lines += [_chain_decl(c) for c in _order(added)]
    for chain in _order([*added, *changed]):
        if chain in applied.chains:
            lines.append(f"flush chain {T} {chain}")
        lines += [f"add rule {T} {chain} {r}" for r in desired.chains[chain]]
    for m in MAPS:
        was, now = applied.maps.get(m, {}), desired.maps.get(m, {})
        if was is now:
            continue
        drop = [k for k, v in was.items() if now.get(k) != v]
        put = [f"{k} : {v}" for k, v in now.items() if was.get(k) != v]
        lines += _elements("delete", m, drop)
        lines += _elements("add", m, put)
    for chain in gone:
        lines.append(f"flush chain {T} {chain}")
    for chain in gone:
        lines.append(f"delete chain {T} {chain}")
    lines += [f"delete set {T} {s}" for s in sorted(gone_sets)]
    return "\n".join(lines) + "\n" if lines else ""


def delta_text(
    old: Mapping[Any, Fragment], new: Mapping[Any, Fragment], changed: Iterable[Any]
) -> str:
    """`partial_text(applied, reassemble(applied, old, new, changed))`, computed from
    the changed Services' fragments alone: its cost is one Service's, whatever
    the number of Services."""
    before, after = Ruleset(maps={m: {} for m in MAPS}), Ruleset(maps={m: {} for m in MAPS})
    for key in changed:
        _merge(before, old.get(key) or Fragment())
        _merge(after, new.get(key) or Fragment())
    return partial_text(before, after)


def needs_full(applied: Ruleset, desired: Ruleset) -> bool:
    """True when a partial transaction cannot express the change (an affinity set's
    timeout changed: nft cannot change a set's timeout in place)."""
    return any(name in applied.sets and applied.sets[name] != t for name, t in desired.sets.items())


def rule_count(ruleset: Ruleset) -> dict[str, int]:
    """Rules and map elements, what /metrics reports for the table."""
    return {
        TABLE: sum(len(r) for r in ruleset.chains.values()),
        f"{TABLE} elements": sum(len(e) for e in ruleset.maps.values()),
    }


def render(services: Iterable[dict[str, Any]], slices: Iterable[dict[str, Any]], node: Node) -> str:
    """The whole table as `nft -f` input. Pure: the same input renders the same text."""
    return full_text(build(services, slices, node), node)
