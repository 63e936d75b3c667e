"""Cluster DNS (`skiff dns`): Services and pods by name, as CoreDNS's kubernetes plugin answers.

    <svc>.<ns>.svc.cluster.local            A      the ClusterIP; for a headless Service
                                                   the ready endpoints' addresses
    <host>.<svc>.<ns>.svc.cluster.local     A      one endpoint of a headless Service: its
                                                   `hostname`, else its address dashed
    _<port>._<proto>.<svc>.<ns>.svc...      SRV    a named port (also for the bare Service name)
    <a-b-c-d>.<ns>.pod.cluster.local        A      a.b.c.d (CoreDNS's `pods insecure`, the
                                                   kubeadm default: no check that the pod exists)
    ExternalName Services                   CNAME  spec.externalName
    anything else in cluster.local          NXDOMAIN (NOERROR without records for a name
                                                   that exists with another type)
    other names                                    forwarded to the node's resolvers

`resolve(name, type, view)` is pure and decides every answer; the shell
around it reads Services and EndpointSlices from informer caches, speaks
the wire format through dnspython (UDP and TCP, truncation, EDNS sizes) and
forwards what is not ours.

Why a node process and not a pod: the Service `kube-system/kube-dns`
(10.96.0.10) has no selector; each `skiff dns` writes an EndpointSlice
`kube-dns-<node>` naming its own node address, exactly as the `kubernetes`
Service names the apiserver. The proxy then DNATs 10.96.0.10 like any
Service. A pod would need an image with Python and skiff in it, which an
air-gapped lab node does not have, and credentials mounted into it; a node
process has the node's kubeconfig already and restarts with the node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import logging
import random
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rrset

from client import errors
from client.config import load_config
from client.informer import Informer
from client.rest import Client
from client.run import component_main, run_until_signalled

log = logging.getLogger("skiff.dns")

ZONE = "cluster.local"
TTL = 5  # CoreDNS's kubernetes plugin default
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
FORWARD = -1  # resolve()'s rcode for "not ours: ask the upstream resolvers"
CACHE_SIZE = 10_000  # answers kept (by question) until the cluster changes
FAST_MAX_RECORDS = 16  # precomputed A answers up to this many addresses (well within 512 bytes)
# The OPT record of an answer to an EDNS query, as dnspython's make_response writes it
# (version 0, no flags, a payload of 8192, no options).
_OPT_REPLY = b"\x00\x00\x29\x20\x00\x00\x00\x00\x00\x00\x00"


class ClusterView(Protocol):
    """What resolve() reads: the informer caches, or a table in a test."""

    def service(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def endpoint_slices(self, namespace: str, name: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Record:
    name: str  # absolute, with the trailing dot
    type: str  # "A", "CNAME", "SRV"
    data: str  # in zone-file text: "10.96.0.5", "0 100 80 web.default.svc.cluster.local."


@dataclass
class Answer:
    rcode: int  # dns.rcode.NOERROR, NXDOMAIN, or FORWARD
    answer: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)


@dataclass(frozen=True)
class _Endpoint:
    ip: str
    host: str  # the first label of its own name: its hostname, or its address dashed
    ports: dict[tuple[str, str], int]  # (port name, protocol) -> port


def _ready_endpoints(slices: Iterable[dict[str, Any]]) -> list[_Endpoint]:
    """Ready IPv4 endpoints of a Service, once each, in address order."""
    found: dict[str, _Endpoint] = {}
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        ports = {
            ((p.get("name") or ""), (p.get("protocol") or "TCP")): int(p["port"])
            for p in s.get("ports") or []
            if p.get("port")
        }
        for e in s.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready") is False:
                continue
            for ip in e.get("addresses") or []:
                host = e.get("hostname") or ip.replace(".", "-")
                found.setdefault(ip, _Endpoint(ip, host.lower(), ports))
    return [found[ip] for ip in sorted(found, key=ipaddress.ip_address)]


def _dashed_ip(label: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(label.replace("-", ".")))
    except ValueError:
        return None


def resolve(qname: str, qtype: str, view: ClusterView, *, zone: str = ZONE) -> Answer:
    """The answer to one question. Pure: reads `view`, nothing else.

    `qname` is absolute or not, any case; `qtype` is "A", "AAAA", "SRV", ...
    """
    name = qname.lower().rstrip(".")
    if name != zone and not name.endswith("." + zone):
        return Answer(FORWARD)
    labels = name[: -len(zone)].rstrip(".").split(".") if name != zone else []
    nodata = Answer(dns.rcode.NOERROR)

    if (
        not labels
        or labels in (["svc"], ["pod"])
        or (len(labels) == 2 and labels[1] in ("svc", "pod"))
    ):
        return nodata  # the zone and namespace levels exist, with no records of their own

    if labels[-1] == "pod" and len(labels) == 3:
        ip = _dashed_ip(labels[0])
        if ip is None:
            return Answer(dns.rcode.NXDOMAIN)
        if qtype != "A":
            return nodata
        return Answer(dns.rcode.NOERROR, [Record(name + ".", "A", ip)])

    if labels[-1] != "svc" or len(labels) not in (3, 4, 5):
        return Answer(dns.rcode.NXDOMAIN)
    svc_name, ns = labels[-3], labels[-2]
    svc = view.service(ns, svc_name)
    if svc is None:
        return Answer(dns.rcode.NXDOMAIN)
    spec = svc.get("spec") or {}
    svc_fqdn = f"{svc_name}.{ns}.svc.{zone}."
    headless = spec.get("clusterIP") == "None"
    endpoints = _ready_endpoints(view.endpoint_slices(ns, svc_name)) if headless else []

    if spec.get("type") == "ExternalName":
        if len(labels) != 3:
            return Answer(dns.rcode.NXDOMAIN)
        target = (spec.get("externalName") or "").rstrip(".") + "."
        return Answer(dns.rcode.NOERROR, [Record(name + ".", "CNAME", target)])

    if len(labels) == 4:  # <host>.<svc>.<ns>.svc: one endpoint of a headless Service
        mine = [e for e in endpoints if e.host == labels[0]]
        if not mine:
            return Answer(dns.rcode.NXDOMAIN)
        if qtype != "A":
            return nodata
        return Answer(dns.rcode.NOERROR, [Record(name + ".", "A", e.ip) for e in mine])

    # SRV: _<port>._<proto>.<svc>..., or every named port for the bare name.
    port_name = proto = ""
    if len(labels) == 5:
        if not (labels[0].startswith("_") and labels[1].startswith("_")):
            return Answer(dns.rcode.NXDOMAIN)
        port_name, proto = labels[0][1:], labels[1][1:]
    ports = [
        p
        for p in spec.get("ports") or []
        if p.get("name")
        and (not port_name or (p["name"].lower() == port_name))
        and (not proto or (p.get("protocol") or "TCP").lower() == proto)
    ]
    if len(labels) == 5 and not ports:
        return Answer(dns.rcode.NXDOMAIN)

    if qtype == "SRV":
        out = Answer(dns.rcode.NOERROR)
        for p in ports:
            protocol = p.get("protocol") or "TCP"
            if not headless:
                out.answer.append(Record(name + ".", "SRV", f"0 100 {p['port']} {svc_fqdn}"))
                out.additional.append(Record(svc_fqdn, "A", spec["clusterIP"]))
                continue
            chosen = [e for e in endpoints if (p["name"], protocol) in e.ports]
            for e in chosen:
                target = f"{e.host}.{svc_fqdn}"
                weight = 100 // len(chosen)
                port = e.ports[(p["name"], protocol)]
                out.answer.append(Record(name + ".", "SRV", f"0 {weight} {port} {target}"))
                out.additional.append(Record(target, "A", e.ip))
        out.additional = list(dict.fromkeys(out.additional))
        return out
    if len(labels) == 5 or qtype != "A":
        return nodata
    if headless:
        return Answer(dns.rcode.NOERROR, [Record(svc_fqdn, "A", e.ip) for e in endpoints])
    ip = spec.get("clusterIP") or ""
    if not ip or ":" in ip:
        return nodata
    return Answer(dns.rcode.NOERROR, [Record(svc_fqdn, "A", ip)])


# -- the shell: informers, the wire, forwarding ------------------------------------------


class InformerView:
    """The informer caches as resolve() reads them (slices indexed by their Service)."""

    def __init__(self, services: Informer, slices: Informer) -> None:
        self.services, self.slices = services, slices

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.services.store.get(f"{namespace}/{name}")

    def endpoint_slices(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return self.slices.store.by_index("service", f"{namespace}/{name}")


def by_service(obj: dict[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{owner}"] if owner else []


def upstream_resolvers(resolv_conf: Path) -> list[str]:
    """The node's nameservers, in the order resolv.conf lists them."""
    out = []
    try:
        text = resolv_conf.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def _rrsets(records: list[Record]) -> list[dns.rrset.RRset]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in records:
        grouped.setdefault((r.name, r.type), []).append(r.data)
    out = []
    for (name, rtype), data in grouped.items():
        if rtype == "A":  # most answers: built directly, parsing text costs twice as much
            rrset = dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.A)
            for ip in data:
                rrset.add(dns.rdtypes.IN.A.A(dns.rdataclass.IN, dns.rdatatype.A, ip), TTL)
            out.append(rrset)
        else:
            out.append(dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rtype, data))
    return out


def _soa(zone: str) -> dns.rrset.RRset:
    """The zone's SOA, in negative answers (its minimum is how long a resolver may
    cache the NXDOMAIN), worded as CoreDNS's."""
    return dns.rrset.from_text(
        f"{zone}.", TTL, "IN", "SOA", f"ns.dns.{zone}. hostmaster.{zone}. 1 7200 1800 86400 {TTL}"
    )


class DNSServer:
    """UDP and TCP on one address; each query answered by resolve() or forwarded."""

    def __init__(
        self, view: ClusterView, *, upstreams: list[str], zone: str = ZONE, upstream_port: int = 53
    ) -> None:
        self.view, self.upstreams, self.zone = view, upstreams, zone
        self.upstream_port = upstream_port
        self._transports: list[Any] = []
        self._cache: dict[tuple[bool, bytes], bytes] = {}
        # Service name (lower-case wire form) -> each answer record's bytes
        self._fast: dict[bytes, tuple[bytes, ...]] = {}

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """Our answer, or None when the question must go to an upstream resolver."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        q = query.question[0]
        result = resolve(
            q.name.to_text(), dns.rdatatype.to_text(q.rdtype), self.view, zone=self.zone
        )
        if result.rcode == FORWARD:
            return None
        response.set_rcode(result.rcode)
        response.answer = _rrsets(result.answer)
        response.additional = _rrsets(result.additional)
        if not response.answer:
            response.authority = [_soa(self.zone)]
        return response

    def cached(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The answer from the cache, or None. A cluster answer depends only on the
        question (the query's bytes after its id) and on the cluster, so answers are
        kept by those bytes until any Service or EndpointSlice changes (`invalidate`):
        a repeated name costs a dictionary lookup instead of dnspython's parse and
        write (about 1 ms), the job CoreDNS's `cache` plugin does."""
        hit = self._cache.get((tcp, wire[2:]))
        return wire[:2] + hit if hit is not None else None

    def invalidate(self) -> None:
        self._cache.clear()

    def changed(self, obj: dict[str, Any]) -> None:
        """An informer event for a Service or an EndpointSlice: every cached answer
        goes (any name may depend on it), and the precomputed A answer of the one
        Service it names is computed again, so that the next question for that name
        costs no more than a repeated one."""
        self._cache.clear()
        meta = obj.get("metadata") or {}
        if "addressType" in obj or "endpoints" in obj:  # an EndpointSlice: its Service's
            name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        else:
            name = meta.get("name")
        if name:
            self.precompute(meta.get("namespace", ""), name)

    def precompute(self, namespace: str, name: str) -> None:
        """The A answer to `<name>.<namespace>.svc.<zone>` as answer records in wire
        form (each naming the question by a pointer), or nothing when the answer is
        not a plain list of addresses (then the general path answers)."""
        fqdn = f"{name}.{namespace}.svc.{self.zone}."
        key = dns.name.from_text(fqdn).to_wire().lower()
        result = resolve(fqdn, "A", self.view, zone=self.zone)
        records = result.answer
        if (
            result.rcode != dns.rcode.NOERROR
            or not 0 < len(records) <= FAST_MAX_RECORDS
            or result.additional
            or any(r.type != "A" or r.name != fqdn for r in records)
        ):
            self._fast.pop(key, None)
            return
        rr = struct.Struct("!HHHIH4s")
        self._fast[key] = tuple(
            rr.pack(0xC00C, 1, 1, TTL, 4, socket.inet_aton(r.data)) for r in records
        )

    def fast(self, wire: bytes) -> bytes | None:
        """The answer to a plain A question (one question, class IN, at most an OPT
        record) for a Service name whose answer is precomputed: the query's header
        and question with the answer records appended, byte for byte what the
        general path writes (a headless Service's records in a random order, as
        there), without parsing the query into dnspython objects.
        None for anything else."""
        if len(wire) < 17 or wire[2] & 0xF8 or wire[4:10] != b"\x00\x01\x00\x00\x00\x00":
            return None  # a response, another opcode, or not exactly one question
        i = 12
        try:
            while wire[i]:
                if wire[i] & 0xC0:
                    return None
                i += wire[i] + 1
        except IndexError:
            return None
        end = i + 1
        if wire[end : end + 4] != b"\x00\x01\x00\x01":  # type A, class IN
            return None
        rest = wire[end + 4 :]
        if wire[10:12] == b"\x00\x00" and not rest:
            opt = b""
        elif (
            wire[10:12] == b"\x00\x01"
            and len(rest) >= 11
            and rest[:3] == b"\x00\x00\x29"
            and rest[5] == 0  # extended rcode
            and rest[6] == 0  # EDNS version 0 (another gets BADVERS from the general path)
            and len(rest) == 11 + int.from_bytes(rest[9:11], "big")
        ):
            opt = _OPT_REPLY
        else:
            return None
        hit = self._fast.get(wire[12:end].lower())
        if hit is None:
            return None
        count = len(hit)
        if count == 1:
            body = hit[0]
        else:  # in a new order each time, as dnspython writes an RRset (round robin)
            body = b"".join(random.sample(hit, count))
        header = wire[:2] + bytes((0x84 | (wire[2] & 0x01), 0)) + b"\x00\x01"
        header += count.to_bytes(2, "big") + b"\x00\x00" + (b"\x00\x01" if opt else b"\x00\x00")
        return header + wire[12 : end + 4] + body + opt

    def answer_wire(self, wire: bytes, *, tcp: bool) -> bytes | dns.message.Message | None:
        """Our answer in wire format; None for no answer at all (not DNS); the parsed
        query when it must be forwarded."""
        hit = self.fast(wire)
        if hit is not None:
            return hit
        hit = self.cached(wire, tcp=tcp)
        if hit is not None:
            return hit
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS: no answer, as CoreDNS
        response = self.answer(query)
        if response is None:
            return query
        limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
        try:
            out = response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer, response.additional = [], []
            response.flags |= dns.flags.TC  # the client asks again over TCP
            out = response.to_wire()
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[(tcp, wire[2:])] = out[2:]
        return out

    async def handle(self, wire: bytes, *, tcp: bool) -> bytes | None:
        out = self.answer_wire(wire, tcp=tcp)
        if isinstance(out, dns.message.Message):
            return await self.forward(out, wire, tcp=tcp)
        return out

    async def forward(self, query: dns.message.Message, wire: bytes, *, tcp: bool) -> bytes:
        for upstream in random.sample(self.upstreams, len(self.upstreams)):
            try:
                if tcp:
                    reply = await dns.asyncquery.tcp(
                        query, upstream, timeout=2, port=self.upstream_port
                    )
                else:
                    reply = await dns.asyncquery.udp(
                        query, upstream, timeout=2, port=self.upstream_port, ignore_trailing=True
                    )
                return reply.to_wire()
            except (dns.exception.DNSException, OSError) as e:
                log.debug("upstream %s failed for %s: %s", upstream, query.question, e)
        failed = dns.message.make_response(query)
        failed.set_rcode(dns.rcode.SERVFAIL)
        return failed.to_wire()

    async def start(self, host: str, port: int) -> int:
        """Listen on UDP and TCP `host:port`; the port bound (0 picks one, the same for both)."""
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                out = server.answer_wire(data, tcp=False)
                if isinstance(out, bytes):
                    self.transport.sendto(out, addr)  # type: ignore[attr-defined]
                elif out is not None:  # forwarded: the only answer that waits
                    task = asyncio.ensure_future(server.forward(out, data, tcp=False))
                    task.add_done_callback(lambda t: self._reply(t, addr))

            def _reply(self, task: asyncio.Future[bytes | None], addr: tuple[str, int]) -> None:
                if not task.cancelled() and task.exception() is None and task.result():
                    self.transport.sendto(task.result(), addr)  # type: ignore[attr-defined]

        transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=(host, port))
        bound = transport.get_extra_info("sockname")[1]
        tcp = await asyncio.start_server(self._tcp, host, bound)
        self._transports = [transport, tcp]
        return int(bound)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = await self.handle(await reader.readexactly(size), tcp=True)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        for t in self._transports:
            t.close()


# -- registration: the kube-dns Service and this server's EndpointSlice -----------------


def kube_dns_service(cluster_ip: str) -> dict[str, Any]:
    """kube-system/kube-dns as kubeadm names it, without a selector: the endpoints are
    the `skiff dns` processes, each writing its own EndpointSlice."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "skiff-dns"},
        },
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    }


def own_endpoint_slice(
    service: dict[str, Any], *, node_name: str, address: str, port: int
) -> dict[str, Any]:
    meta = service["metadata"]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"kube-dns-{node_name}",
            "namespace": "kube-system",
            "labels": {
                SERVICE_NAME_LABEL: "kube-dns",
                "endpointslice.kubernetes.io/managed-by": "skiff-dns",
            },
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": True}, "nodeName": node_name}
        ],
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"},
        ],
    }


async def register(
    client: Client, *, cluster_ip: str, node_name: str, address: str, port: int
) -> None:
    """Make sure kube-dns exists and that this server is one of its endpoints."""
    # Look before creating: a create of an existing kube-dns fails on its fixed ClusterIP
    # ("already allocated", Invalid) before the name is checked, as in Kubernetes.
    try:
        service = await client.get("v1", "Service", "kube-system", "kube-dns")
    except errors.NotFound:
        try:
            service = await client.create(kube_dns_service(cluster_ip))
        except errors.AlreadyExists:
            service = await client.get("v1", "Service", "kube-system", "kube-dns")
    body = own_endpoint_slice(service, node_name=node_name, address=address, port=port)
    try:
        await client.create(body)
    except errors.AlreadyExists:
        current = await client.get(
            "discovery.k8s.io/v1", "EndpointSlice", "kube-system", body["metadata"]["name"]
        )
        await client.update(
            {
                **current,
                **{k: body[k] for k in ("endpoints", "ports")},
                "metadata": {**current["metadata"], **body["metadata"]},
            }
        )


async def unregister(client: Client, *, node_name: str) -> None:
    """This server stops: its endpoint goes, so the proxy stops sending queries here."""
    with contextlib.suppress(errors.NotFound):
        await client.delete(
            "discovery.k8s.io/v1", "EndpointSlice", "kube-system", f"kube-dns-{node_name}"
        )


async def _listen(server: DNSServer, host: str, port: int) -> int:
    """Bind, waiting for the address to exist: the node's bridge address, a good
    one to advertise to pods, appears only with the node's first pod."""
    waiting = False
    while True:
        try:
            return await server.start(host, port)
        except OSError as e:
            if e.errno != errno.EADDRNOTAVAIL:
                raise
            if not waiting:
                log.info("%s is not an address of this node yet; waiting for it", host)
                waiting = True
            await asyncio.sleep(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff dns", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument("--node-name", default="", help="default: the hostname")
    p.add_argument(
        "--bind-address",
        default="",
        help="default: the advertise address. A UDP server bound to 0.0.0.0 answers from "
        "whatever address routing picks, which a client reached through the kube-dns "
        "ClusterIP (DNAT) does not recognise as the reply",
    )
    p.add_argument("--port", type=int, default=53)
    p.add_argument(
        "--advertise-address",
        required=True,
        help="the node address pods reach this server on (its EndpointSlice names it)",
    )
    p.add_argument("--cluster-dns-ip", default="10.96.0.10", help="kube-dns' ClusterIP")
    p.add_argument("--cluster-domain", default=ZONE)
    p.add_argument("--resolv-conf", default="/etc/resolv.conf", help="upstream resolvers")
    p.add_argument("--upstream-port", type=int, default=53, help=argparse.SUPPRESS)
    p.add_argument("--no-register", action="store_true", help="do not write kube-dns objects")
    p.add_argument(
        "-v", "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    client = Client(load_config(args.kubeconfig), user_agent="skiff-dns")
    node_name = args.node_name or socket.gethostname()
    services = Informer(client, "v1", "Service")
    slices = Informer(
        client, "discovery.k8s.io/v1", "EndpointSlice", indexers={"service": by_service}
    )
    server = DNSServer(
        InformerView(services, slices),
        upstreams=upstream_resolvers(Path(args.resolv_conf)),
        zone=args.cluster_domain.rstrip("."),
        upstream_port=args.upstream_port,
    )
    for informer in (services, slices):
        informer.add_handlers(
            on_add=server.changed,
            on_update=lambda _o, new: server.changed(new),
            on_delete=server.changed,
        )

    async def work() -> None:
        services.start()
        slices.start()
        try:
            await services.wait_for_sync()
            await slices.wait_for_sync()
            bind = args.bind_address or args.advertise_address
            port = await _listen(server, bind, args.port)
            log.info("answering for %s on %s:%d", args.cluster_domain, bind, port)
            if not args.no_register:
                await register(
                    client,
                    cluster_ip=args.cluster_dns_ip,
                    node_name=node_name,
                    address=args.advertise_address,
                    port=port,
                )
            await asyncio.Event().wait()
        finally:
            await server.stop()
            if not args.no_register:
                with contextlib.suppress(Exception):
                    await unregister(client, node_name=node_name)
            await services.stop()
            await slices.stop()

    try:
        await run_until_signalled(work)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return component_main("skiff dns", args, run)


if __name__ == "__main__":
    sys.exit(main())
