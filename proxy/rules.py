"""The service proxy's ruleset, rendered whole by one pure function.

`render(services, slices, node)` turns Services and EndpointSlices into the
text `iptables-restore --noflush` loads, the way kube-proxy's iptables mode
lays it out, with `SKIFF-` where kube-proxy writes `KUBE-`:

    PREROUTING, OUTPUT -> SKIFF-SERVICES
        -d clusterIP --dport port       -> SKIFF-SVC-<hash>  (one chain per service port)
        -d externalIP or LB IP          -> SKIFF-EXT-<hash>  (traffic from outside)
        last: -d <node address>         -> SKIFF-NODEPORTS -> SKIFF-EXT-<hash>
    SKIFF-EXT-<hash>  -> SKIFF-MARK-MASQ, then SKIFF-SVC-<hash>
                         (or SKIFF-SVL-<hash>, this node's endpoints, for a Local policy)
    SKIFF-SVC-<hash>  -> statistic random 1/n, 1/(n-1), ..., 1 -> SKIFF-SEP-<hash> (per endpoint)
    SKIFF-SEP-<hash>  -> DNAT to podIP:port (SKIFF-MARK-MASQ first when a pod reaches itself)
    POSTROUTING -> SKIFF-POSTROUTING: MASQUERADE what SKIFF-MARK-MASQ marked

and in the filter table, SKIFF-SERVICES and SKIFF-EXTERNAL-SERVICES REJECT new
connections to a service port with no ready endpoint (ICMP port unreachable:
the client fails at once instead of hanging), SKIFF-FORWARD accepts marked
service traffic even where FORWARD's policy is DROP.

Chain names stay within iptables' 28 characters by hashing, exactly as
kube-proxy does: the first 16 base32 characters of sha256("ns/svc:port" +
protocol [+ "ip:port"]). Each render declares every chain it owns, which
flushes it within the same atomic restore, so a rule that is no longer wanted
cannot survive a sync; chains it owned before and no longer uses (named in
`existing`) are deleted. Chains skiff does not own (the runtime's
SKIFF-HOSTPORTS, anyone's KUBE-*, a user's) are never named, so never touched.
The jumps from the built-in chains into ours are `JUMPS`: the caller makes
sure each exists once (iptables-restore --noflush cannot do that for chains
it does not own).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Our fixed chains, per table.
SERVICES = "SKIFF-SERVICES"
EXTERNAL_SERVICES = "SKIFF-EXTERNAL-SERVICES"
FORWARD = "SKIFF-FORWARD"
NODEPORTS = "SKIFF-NODEPORTS"
POSTROUTING = "SKIFF-POSTROUTING"
MARK_MASQ = "SKIFF-MARK-MASQ"
NAT_CHAINS = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ)
FILTER_CHAINS = (SERVICES, EXTERNAL_SERVICES, FORWARD)

# Per-service and per-endpoint chains: what a re-render may delete when stale.
SVC_PREFIX = "SKIFF-SVC-"  # a service port, over all ready endpoints
SVL_PREFIX = "SKIFF-SVL-"  # a service port, over this node's ready endpoints only
EXT_PREFIX = "SKIFF-EXT-"  # traffic from outside to a NodePort, external or LB IP
SEP_PREFIX = "SKIFF-SEP-"  # one endpoint
OWNED_PREFIXES = (SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, SEP_PREFIX)

MASQ_MARK = "0x4000"  # kube-proxy's default masquerade bit (14)
DEFAULT_AFFINITY_SECONDS = 10800  # sessionAffinityConfig.clientIP.timeoutSeconds default
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# (table, built-in chain, rule spec): the jumps into our chains, one each.
JUMPS: tuple[tuple[str, str, str], ...] = (
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW"
        f' -m comment --comment "skiff externally-visible service portals" -j {EXTERNAL_SERVICES}',
    ),
    (
        "filter",
        "FORWARD",
        f'-m conntrack --ctstate NEW -m comment --comment "skiff service portals" -j {SERVICES}',
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW"
        f' -m comment --comment "skiff externally-visible service portals" -j {EXTERNAL_SERVICES}',
    ),
    ("filter", "FORWARD", f'-m comment --comment "skiff forwarding rules" -j {FORWARD}'),
    (
        "filter",
        "OUTPUT",
        f'-m conntrack --ctstate NEW -m comment --comment "skiff service portals" -j {SERVICES}',
    ),
    ("nat", "PREROUTING", f'-m comment --comment "skiff service portals" -j {SERVICES}'),
    ("nat", "OUTPUT", f'-m comment --comment "skiff service portals" -j {SERVICES}'),
    ("nat", "POSTROUTING", f'-m comment --comment "skiff postrouting rules" -j {POSTROUTING}'),
)


@dataclass(frozen=True)
class Node:
    """What the proxy knows of the node it runs on.

    `addresses`: where NodePorts answer (loopback ones are skipped, as
    kube-proxy skips them: DNAT from 127.0.0.1 to a pod needs route_localnet).
    `cluster_cidr`: the pods' addresses; a connection to a ClusterIP from
    outside it is masqueraded, so that replies come back through this node.
    """

    name: str
    addresses: tuple[str, ...] = ()
    cluster_cidr: str = ""


def node_from_api(node: dict[str, Any], *, cluster_cidr: str = "") -> Node:
    """The Node as `render` needs it: its name and IPv4 InternalIP/ExternalIP addresses."""
    addresses = []
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") in ("InternalIP", "ExternalIP") and _is_ipv4(a.get("address", "")):
            if a["address"] not in addresses:
                addresses.append(a["address"])
    return Node(node["metadata"]["name"], tuple(addresses), cluster_cidr)


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node_name: str = ""

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service: the unit kube-proxy programs (and names chains after)."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # lower case, as iptables spells it
    port: int
    cluster_ip: str
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_seconds: int | None = None  # sessionAffinity ClientIP: its timeout
    external_local: bool = False  # externalTrafficPolicy: Local
    internal_local: bool = False  # internalTrafficPolicy: Local

    @property
    def name(self) -> str:
        """`ns/svc:port`, or `ns/svc` for an unnamed port: kube-proxy's ServicePortName."""
        base = f"{self.namespace}/{self.service}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


@functools.lru_cache(maxsize=1 << 16)
def _hash(text: str) -> str:
    """kube-proxy's: base32(sha256(text))[:16]. Sixteen base32 characters are exactly
    the first 10 bytes, so only those are encoded; names repeat from sync to sync,
    hence the cache."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def svc_chain(sp: ServicePort) -> str:
    return SVC_PREFIX + _hash(sp.name + sp.protocol)


def svl_chain(sp: ServicePort) -> str:
    return SVL_PREFIX + _hash(sp.name + sp.protocol)


def ext_chain(sp: ServicePort) -> str:
    return EXT_PREFIX + _hash(sp.name + sp.protocol)


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return SEP_PREFIX + _hash(sp.name + sp.protocol + str(ep))


@functools.lru_cache(maxsize=1 << 16)
def _is_ipv4(address: str) -> bool:
    """A dotted-quad IPv4 address, as `ipaddress` reads one (no leading zeros), by
    inet_pton: ~20x cheaper, and a full render at 5,000 Services asks 25,000 times."""
    try:
        socket.inet_pton(socket.AF_INET, address)
    except (OSError, TypeError, ValueError):
        return False
    return not any(len(part) > 1 and part[0] == "0" for part in address.split("."))


def _ip_key(address: str) -> tuple[int, ...]:
    """Sort key of a (valid) IPv4 address: numeric, so 10.0.0.9 comes before 10.0.0.10."""
    return tuple(int(part) for part in address.split("."))


def service_ports(service: dict[str, Any]) -> list[ServicePort]:
    """The ports of a Service that get rules: none for headless or ExternalName
    Services, nor for one without an IPv4 ClusterIP (yet)."""
    meta, spec = service["metadata"], service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP") or ""
    if kind == "ExternalName" or not _is_ipv4(cluster_ip):
        return []
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
    lb_ips: tuple[str, ...] = ()
    if kind == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb_ips = tuple(i["ip"] for i in ingress if _is_ipv4(i.get("ip") or ""))
    out = []
    for p in spec.get("ports") or []:
        out.append(
            ServicePort(
                namespace=meta["namespace"],
                service=meta["name"],
                port_name=p.get("name") or "",
                protocol=(p.get("protocol") or "TCP").lower(),
                port=int(p["port"]),
                cluster_ip=cluster_ip,
                node_port=int(p.get("nodePort") or 0)
                if kind in ("NodePort", "LoadBalancer")
                else 0,
                external_ips=tuple(ip for ip in spec.get("externalIPs") or [] if _is_ipv4(ip)),
                load_balancer_ips=lb_ips,
                affinity_seconds=affinity,
                external_local=spec.get("externalTrafficPolicy") == "Local"
                and kind in ("NodePort", "LoadBalancer"),
                internal_local=spec.get("internalTrafficPolicy") == "Local",
            )
        )
    return out


def ready_endpoints(sp: ServicePort, slices: Iterable[dict[str, Any]]) -> list[Endpoint]:
    """The endpoints traffic may go to: ready (an absent `ready` means ready, as the
    API defines it), IPv4, on the slice port of the same name and protocol."""
    found: dict[tuple[str, int], Endpoint] = {}  # one per ip:port, whichever slice says it
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        port = next(
            (
                p
                for p in s.get("ports") or []
                if (p.get("name") or "") == sp.port_name
                and (p.get("protocol") or "TCP").lower() == sp.protocol
                and p.get("port")
            ),
            None,
        )
        if port is None:
            continue
        for e in s.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready") is False:
                continue
            for ip in e.get("addresses") or []:
                if _is_ipv4(ip):
                    found.setdefault(
                        (ip, int(port["port"])),
                        Endpoint(ip, int(port["port"]), e.get("nodeName") or ""),
                    )
    return [found[k] for k in sorted(found, key=lambda k: (_ip_key(k[0]), k[1]))]


def probability(n: int) -> str:
    """The chance of taking this one of the n endpoints still left: 1/n, as kube-proxy
    writes it, so that each of n endpoints is chosen with probability 1/n overall."""
    return f"{1.0 / n:0.10f}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def _dport(sp: ServicePort, port: int) -> str:
    return f"-m {sp.protocol} --dport {port}"


class _Table:
    """Chains of one table, each with its rules in order (the order a packet meets them)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.chains: dict[str, list[str]] = {}

    def chain(self, name: str) -> str:
        self.chains.setdefault(name, [])
        return name

    def add(self, chain: str, spec: str) -> None:
        self.chains.setdefault(chain, []).append(spec)


def _to_endpoints(nat: _Table, sp: ServicePort, chain: str, endpoints: list[Endpoint]) -> None:
    """From a service chain to its endpoints' chains: sticky ones first, then at random."""
    if sp.affinity_seconds is not None:
        for ep in endpoints:
            sep = sep_chain(sp, ep)
            nat.add(
                chain,
                f"{_comment(f'{sp.name} -> {ep}')} -m recent --rcheck"
                f" --seconds {sp.affinity_seconds} --reap --name {sep}"
                f" --mask 255.255.255.255 --rsource -j {sep}",
            )
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        chance = (
            "" if i == n - 1 else f" -m statistic --mode random --probability {probability(n - i)}"
        )
        nat.add(chain, f"{_comment(f'{sp.name} -> {ep}')}{chance} -j {sep_chain(sp, ep)}")


def _service_port(
    nat: _Table, filt: _Table, sp: ServicePort, endpoints: list[Endpoint], node: Node
) -> None:
    """Every rule of one service port, in kube-proxy's order."""
    local = [e for e in endpoints if e.node_name == node.name]
    internal = local if sp.internal_local else endpoints
    external = local if sp.external_local else endpoints
    reachable = endpoints  # every endpoint some rule here may send to (local ones included)
    cluster_chain, local_chain = svc_chain(sp), svl_chain(sp)
    internal_chain = local_chain if sp.internal_local else cluster_chain
    external_policy_chain = local_chain if sp.external_local else cluster_chain
    uses_cluster = bool(endpoints) and (not sp.internal_local or sp.externally_accessible)
    uses_local = bool(local) and (
        sp.internal_local or (sp.external_local and sp.externally_accessible)
    )
    uses_external = bool(reachable) and sp.externally_accessible
    proto = f"-p {sp.protocol}"

    # Without endpoints a connection is refused at once; with endpoints elsewhere
    # only (a Local policy), it is dropped, as kube-proxy does.
    internal_target, internal_why = "REJECT", f"{sp.name} has no endpoints"
    external_target, external_why = "REJECT", f"{sp.name} has no endpoints"
    if reachable:
        if not internal:
            internal_target, internal_why = "DROP", f"{sp.name} has no local endpoints"
        if not external:
            external_target, external_why = "DROP", f"{sp.name} has no local endpoints"

    for chain, used in ((cluster_chain, uses_cluster), (local_chain, uses_local)):
        if used:
            nat.chain(chain)
    if uses_external:
        nat.chain(ext_chain(sp))
    for ep in reachable:
        nat.chain(sep_chain(sp, ep))

    # The ClusterIP.
    cluster = f"-d {sp.cluster_ip}/32 {proto} {_comment(f'{sp.name} cluster IP')}"
    if internal:
        if node.cluster_cidr:
            # Off-cluster traffic to a ClusterIP (a node routing the service range
            # to this one) may leave through another node: masquerade it.
            nat.add(
                internal_chain,
                f"! -s {node.cluster_cidr} {cluster} {_dport(sp, sp.port)} -j {MARK_MASQ}",
            )
        nat.add(SERVICES, f"{cluster} {_dport(sp, sp.port)} -j {internal_chain}")
    else:
        filt.add(
            SERVICES,
            f"-d {sp.cluster_ip}/32 {proto} {_comment(internal_why)}"
            f" {_dport(sp, sp.port)} -j {internal_target}",
        )

    # External IPs and load-balancer IPs.
    for ips, what in ((sp.external_ips, "external IP"), (sp.load_balancer_ips, "loadbalancer IP")):
        for ip in ips:
            if reachable:
                nat.add(
                    SERVICES,
                    f"-d {ip}/32 {proto} {_comment(f'{sp.name} {what}')}"
                    f" {_dport(sp, sp.port)} -j {ext_chain(sp)}",
                )
            if not external:
                filt.add(
                    EXTERNAL_SERVICES,
                    f"-d {ip}/32 {proto} {_comment(external_why)}"
                    f" {_dport(sp, sp.port)} -j {external_target}",
                )

    # The NodePort, on this node's addresses.
    if sp.node_port:
        if reachable:
            nat.add(
                NODEPORTS,
                f"{proto} {_comment(sp.name)} {_dport(sp, sp.node_port)} -j {ext_chain(sp)}",
            )
        if not external:
            filt.add(
                EXTERNAL_SERVICES,
                f"{proto} {_comment(external_why)} -m addrtype --dst-type LOCAL"
                f" {_dport(sp, sp.node_port)} -j {external_target}",
            )

    # Traffic from outside: masquerade it, unless a Local policy keeps the client's address.
    if uses_external:
        ext = ext_chain(sp)
        if not sp.external_local:
            nat.add(
                ext,
                f"{_comment(f'masquerade traffic for {sp.name} external destinations')}"
                f" -j {MARK_MASQ}",
            )
        else:
            if node.cluster_cidr:
                # A pod reaching a NodePort: as if it went out to a load balancer and back.
                nat.add(
                    ext,
                    f"-s {node.cluster_cidr}"
                    f" {_comment(f'pod traffic for {sp.name} external destinations')}"
                    f" -j {cluster_chain}",
                )
            # The node itself: its source is a local address, which must be masqueraded.
            nat.add(
                ext,
                f"{_comment(f'masquerade LOCAL traffic for {sp.name} external destinations')}"
                f" -m addrtype --src-type LOCAL -j {MARK_MASQ}",
            )
            nat.add(
                ext,
                f"{_comment(f'route LOCAL traffic for {sp.name} external destinations')}"
                f" -m addrtype --src-type LOCAL -j {cluster_chain}",
            )
        if external:
            nat.add(ext, f"-j {external_policy_chain}")

    if uses_cluster:
        _to_endpoints(nat, sp, cluster_chain, endpoints)
    if uses_local:
        _to_endpoints(nat, sp, local_chain, local)

    for ep in reachable:
        sep = sep_chain(sp, ep)
        # Hairpin: a pod reaching itself through its Service must see the reply
        # come from the service address, so the node masquerades it.
        nat.add(sep, f"-s {ep.ip}/32 {_comment(sp.name)} -j {MARK_MASQ}")
        sticky = ""
        if sp.affinity_seconds is not None:
            sticky = f" -m recent --set --name {sep} --mask 255.255.255.255 --rsource"
        nat.add(sep, f"{proto} {_comment(sp.name)}{sticky} -j DNAT --to-destination {ep}")


# What one Service contributes: table -> chain -> rules. Its own chains
# (SKIFF-SVC/SVL/EXT/SEP-) appear whole; the shared ones (SKIFF-SERVICES,
# SKIFF-NODEPORTS, ...) with just the rules this Service adds to them.
Fragment = dict[str, dict[str, list[str]]]
# A whole ruleset: table -> chain -> rules, in the order they are written.
Ruleset = dict[str, dict[str, list[str]]]
TABLES = ("filter", "nat")


def service_fragment(
    service: dict[str, Any], slices: Iterable[dict[str, Any]], node: Node
) -> Fragment:
    """Every rule of one Service, given the EndpointSlices that name it.

    This is the unit the sync loop caches: a change to one Service or to its
    endpoints re-renders this fragment only, so a sync at 5,000 Services costs
    what one Service costs, plus assembling lists.
    """
    nat, filt = _Table("nat"), _Table("filter")
    slices = list(slices)
    for sp in service_ports(service):
        _service_port(nat, filt, sp, ready_endpoints(sp, slices), node)
    return {"filter": filt.chains, "nat": nat.chains}


def _frame(node: Node) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    """The rules of the shared chains that come before and after every Service's:
    table -> chain -> (head, tail)."""
    why = _comment("skiff service nodeports; NOTE: this must be the last rule in this chain")
    node_ips = [
        a for a in node.addresses if _is_ipv4(a) and not ipaddress.ip_address(a).is_loopback
    ]
    # Last in SKIFF-SERVICES: anything addressed to this node may be a NodePort.
    if node_ips:
        to_node_ports = [f"-d {ip}/32 {why} -j {NODEPORTS}" for ip in node_ips]
    else:
        to_node_ports = [f"! -d 127.0.0.0/8 {why} -m addrtype --dst-type LOCAL -j {NODEPORTS}"]
    nat: dict[str, tuple[list[str], list[str]]] = {c: ([], []) for c in NAT_CHAINS}
    filt: dict[str, tuple[list[str], list[str]]] = {c: ([], []) for c in FILTER_CHAINS}
    # Masquerade what was marked, once (the mark is cleared so that a packet
    # that goes round again is not masqueraded twice).
    nat[POSTROUTING] = (
        [
            f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
            f"-j MARK --xor-mark {MASQ_MARK}",
            f"{_comment('skiff service traffic requiring SNAT')} -j MASQUERADE --random-fully",
        ],
        [],
    )
    nat[MARK_MASQ] = ([f"-j MARK --or-mark {MASQ_MARK}"], [])
    nat[SERVICES] = ([], to_node_ports)
    filt[FORWARD] = (
        [
            f"{_comment('skiff forwarding rules')}"
            f" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
            f"{_comment('skiff forwarding conntrack rule')}"
            " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ],
        [],
    )
    return {"filter": filt, "nat": nat}


def assemble(fragments: Iterable[Fragment], node: Node) -> Ruleset:
    """The whole ruleset from the fragments of every Service, in the order given
    (the caller sorts them by namespace/name, so the result is the same whatever
    order objects arrived in)."""
    frame = _frame(node)
    tables: Ruleset = {
        table: {chain: list(head) for chain, (head, _) in chains.items()}
        for table, chains in frame.items()
    }
    for fragment in fragments:
        for table, chains in fragment.items():
            into = tables[table]
            for chain, rules in chains.items():
                if chain in into:
                    into[chain].extend(rules)  # a shared chain
                else:
                    into[chain] = list(rules)
    for table, chains in frame.items():
        for chain, (_, tail) in chains.items():
            tables[table][chain].extend(tail)
    return tables


def reassemble(
    applied: Ruleset,
    old: Mapping[Any, Fragment],
    new: Mapping[Any, Fragment],
    changed: Iterable[Any],
    node: Node,
) -> tuple[Ruleset, dict[str, set[str]]]:
    """`assemble(new fragments in key order)`, computed from `applied` (the same
    assembly of `old`) when only the `changed` keys' fragments differ: their own
    chains are swapped, and a shared chain is rebuilt only if what they add to it
    changed. Also returns the chains that may differ from `applied`, per table,
    so that `partial_text` compares those only. At 5,000 Services this is what
    keeps a one-endpoint sync from costing a whole assembly."""
    out: Ruleset = {table: dict(chains) for table, chains in applied.items()}
    touched: dict[str, set[str]] = {table: set() for table in TABLES}
    dirty: dict[str, set[str]] = {table: set() for table in TABLES}
    for key in changed:
        before, after = old.get(key) or {}, new.get(key) or {}
        for table in TABLES:
            shared = set(NAT_CHAINS if table == "nat" else FILTER_CHAINS)
            was, now = before.get(table, {}), after.get(table, {})
            for chain in was:
                if chain not in shared:
                    out[table].pop(chain, None)
                    touched[table].add(chain)
            for chain, rules in now.items():
                if chain not in shared:
                    out[table][chain] = list(rules)
                    touched[table].add(chain)
            for chain in shared:
                if was.get(chain, []) != now.get(chain, []):
                    dirty[table].add(chain)
    if any(dirty.values()):
        frame = _frame(node)
        ordered = [new[k] for k in sorted(new)]
        for table, chains in dirty.items():
            for chain in chains:
                head, tail = frame[table][chain]
                rules = list(head)
                for fragment in ordered:
                    rules.extend(fragment.get(table, {}).get(chain, ()))
                out[table][chain] = rules + tail
                touched[table].add(chain)
    return out, touched


def by_service(slices: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """EndpointSlices grouped by the Service their `kubernetes.io/service-name` label names."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            out.setdefault((meta.get("namespace", ""), owner), []).append(s)
    return out


def rule_count(ruleset: Ruleset) -> dict[str, int]:
    """Rules per table: what /metrics reports."""
    return {table: sum(len(r) for r in chains.values()) for table, chains in ruleset.items()}


def full_text(ruleset: Ruleset, *, existing: Mapping[str, Iterable[str]] | None = None) -> str:
    """The whole ruleset as `iptables-restore --noflush` input: every chain declared
    (which flushes it) and written, and our chains in `existing` that are no
    longer used flushed and deleted."""
    existing = existing or {}
    lines = []
    for table in TABLES:
        chains = ruleset.get(table, {})
        stale = sorted(
            c for c in existing.get(table, ()) if c.startswith(OWNED_PREFIXES) and c not in chains
        )
        lines.append(f"*{table}")
        lines += [f":{c} - [0:0]" for c in [*chains, *stale]]
        for chain, rules in chains.items():
            lines += [f"-A {chain} {r}" for r in rules]
        lines += [f"-X {c}" for c in stale]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _edits(chain: str, applied: list[str], desired: list[str]) -> list[str] | None:
    """`-D`/`-I` lines that turn a shared chain's `applied` rules into `desired`, or
    None when rewriting the chain is simpler (duplicates, a new order, many edits).

    The rules left after the deletions keep their order, and each missing one
    is inserted at its final position, lowest first: the chain ends up exactly
    as a full render writes it, so a restarted proxy converges to the same text.
    """
    want, have = set(desired), set(applied)
    if len(want) != len(desired) or len(have) != len(applied):
        return None
    kept = [r for r in applied if r in want]
    it = iter(desired)
    if not all(any(r == d for d in it) for r in kept):  # kept is not a subsequence
        return None
    deletes = [r for r in applied if r not in want]
    inserts = [(i, r) for i, r in enumerate(desired) if r not in have]
    if len(deletes) + len(inserts) > max(8, len(desired) // 2):
        return None
    return [
        *(f"-D {chain} {r}" for r in deletes),
        *(f"-I {chain} {i + 1} {r}" for i, r in inserts),
    ]


def partial_text(
    applied: Ruleset, desired: Ruleset, *, only: Mapping[str, Iterable[str]] | None = None
) -> str:
    """Only what changed since `applied` (the last ruleset loaded), kube-proxy's
    minimal restore: a chain of ours whose rules changed is declared and
    rewritten, a new one created, one no longer used flushed and deleted, and
    the shared chains (SKIFF-SERVICES, ...) edited rule by rule. Unchanged
    chains are not named, so the kernel is not asked to rewrite them. Empty
    when nothing changed. `only`: the chains that may have changed, per table
    (from `reassemble`), so that 30,000 unchanged chains are not compared."""
    out: list[str] = []
    for table in TABLES:
        old, new = applied.get(table, {}), desired.get(table, {})
        fixed = set(NAT_CHAINS if table == "nat" else FILTER_CHAINS)
        declare, write, edit = [], [], []
        if only is None:
            candidates = list(new)
        else:
            candidates = sorted(c for c in only.get(table, ()) if c in new)
        for chain in candidates:
            rules = new[chain]
            before = old.get(chain)
            if before == rules:
                continue
            if chain in fixed and before is not None:
                lines = _edits(chain, before, rules)
                if lines is not None:
                    edit += lines
                    continue
            declare.append(chain)
            write += [f"-A {chain} {r}" for r in rules]
        scope = old if only is None else [c for c in only.get(table, ()) if c in old]
        gone = sorted(c for c in scope if c not in new and c.startswith(OWNED_PREFIXES))
        if not (declare or edit or gone):
            continue
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in [*declare, *gone]]
        out += edit  # deletions first, so nothing refers to a chain about to go
        out += write
        out += [f"-X {c}" for c in gone]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def render(
    services: Iterable[dict[str, Any]],
    slices: Iterable[dict[str, Any]],
    node: Node,
    *,
    existing: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """The whole ruleset, as `iptables-restore --noflush` input (filter and nat tables).

    `existing`: the chains each table holds now (`chains_in(iptables-save
    output)`); those skiff owns but no longer uses are deleted. Pure: the same
    input renders the same text, whatever order Services and slices come in.
    """
    return full_text(build(services, slices, node), existing=existing)


def build(
    services: Iterable[dict[str, Any]], slices: Iterable[dict[str, Any]], node: Node
) -> Ruleset:
    """The whole ruleset, as chains and rules (what `render` writes out)."""
    grouped = by_service(slices)
    ordered = sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"]))
    fragments = (
        service_fragment(
            s, grouped.get((s["metadata"]["namespace"], s["metadata"]["name"]), []), node
        )
        for s in ordered
    )
    return assemble(fragments, node)


def chains_in(saved: str) -> dict[str, set[str]]:
    """The chains of each table in `iptables-save` output."""
    out: dict[str, set[str]] = {}
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            out.setdefault(table, set())
        elif line.startswith(":") and table:
            out[table].add(line[1:].split()[0])
    return out
