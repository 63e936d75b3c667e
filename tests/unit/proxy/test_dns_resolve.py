"""Cluster DNS answers, over a table of Services and EndpointSlices (CoreDNS's behaviour)."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rcode
import pytest

from proxy.dns import FORWARD, DNSServer, Record, resolve, upstream_resolvers

NX, OK = dns.rcode.NXDOMAIN, dns.rcode.NOERROR


def svc(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def endpoint(ip: str, ready: bool | None = True, hostname: str = "") -> dict[str, Any]:
    e: dict[str, Any] = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


class View:
    def __init__(self) -> None:
        self.services = {
            ("default", "web"): svc(
                "web",
                clusterIP="10.96.0.20",
                ports=[
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"port": 9000, "protocol": "TCP"},  # unnamed: no SRV
                ],
            ),
            ("default", "db"): svc(
                "db",
                clusterIP="None",
                ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
            ),
            ("other", "ext"): svc("ext", type="ExternalName", externalName="example.org"),
        }
        self.slices = {
            ("default", "db"): [
                {
                    "addressType": "IPv4",
                    "ports": [{"name": "pg", "port": 15432, "protocol": "TCP"}],
                    "endpoints": [
                        endpoint("10.244.0.9", hostname="db-0"),
                        endpoint("10.244.0.10", ready=None),
                        endpoint("10.244.0.11", ready=False),  # never answered
                    ],
                }
            ]
        }

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.services.get((namespace, name))

    def endpoint_slices(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return self.slices.get((namespace, name), [])


A = "A"


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode", "answer"),
    [
        (
            "web.default.svc.cluster.local.",
            A,
            OK,
            [("web.default.svc.cluster.local.", A, "10.96.0.20")],
        ),
        (
            "WEB.Default.svc.cluster.local",
            A,
            OK,
            [("web.default.svc.cluster.local.", A, "10.96.0.20")],
        ),
        ("web.default.svc.cluster.local.", "AAAA", OK, []),  # exists, IPv4 only: no data
        ("nope.default.svc.cluster.local.", A, NX, []),
        ("web.nope.svc.cluster.local.", A, NX, []),
        ("web.default.svc.cluster.local.", "TXT", OK, []),
        # Headless: the ready endpoints (absent `ready` counts as ready), in address order.
        (
            "db.default.svc.cluster.local.",
            A,
            OK,
            [
                ("db.default.svc.cluster.local.", A, "10.244.0.9"),
                ("db.default.svc.cluster.local.", A, "10.244.0.10"),
            ],
        ),
        (
            "db-0.db.default.svc.cluster.local.",
            A,
            OK,
            [("db-0.db.default.svc.cluster.local.", A, "10.244.0.9")],
        ),
        (
            "10-244-0-10.db.default.svc.cluster.local.",
            A,
            OK,
            [("10-244-0-10.db.default.svc.cluster.local.", A, "10.244.0.10")],
        ),
        ("10-244-0-11.db.default.svc.cluster.local.", A, NX, []),  # not ready
        ("x.web.default.svc.cluster.local.", A, NX, []),
        # SRV for named ports only.
        (
            "_http._tcp.web.default.svc.cluster.local.",
            "SRV",
            OK,
            [
                (
                    "_http._tcp.web.default.svc.cluster.local.",
                    "SRV",
                    "0 100 80 web.default.svc.cluster.local.",
                )
            ],
        ),
        (
            "web.default.svc.cluster.local.",
            "SRV",
            OK,
            [("web.default.svc.cluster.local.", "SRV", "0 100 80 web.default.svc.cluster.local.")],
        ),
        ("_http._udp.web.default.svc.cluster.local.", "SRV", NX, []),
        ("_grpc._tcp.web.default.svc.cluster.local.", "SRV", NX, []),
        (
            "_pg._tcp.db.default.svc.cluster.local.",
            "SRV",
            OK,
            [
                (
                    "_pg._tcp.db.default.svc.cluster.local.",
                    "SRV",
                    "0 50 15432 db-0.db.default.svc.cluster.local.",
                ),
                (
                    "_pg._tcp.db.default.svc.cluster.local.",
                    "SRV",
                    "0 50 15432 10-244-0-10.db.default.svc.cluster.local.",
                ),
            ],
        ),
        # ExternalName: a CNAME, whatever the type asked.
        (
            "ext.other.svc.cluster.local.",
            A,
            OK,
            [("ext.other.svc.cluster.local.", "CNAME", "example.org.")],
        ),
        # Pods: the dashed address, in any namespace (CoreDNS's `pods insecure`).
        (
            "10-244-1-7.default.pod.cluster.local.",
            A,
            OK,
            [("10-244-1-7.default.pod.cluster.local.", A, "10.244.1.7")],
        ),
        ("10-244-1-999.default.pod.cluster.local.", A, NX, []),
        # The levels above names exist; anything else in the zone does not.
        ("default.svc.cluster.local.", A, OK, []),
        ("svc.cluster.local.", A, OK, []),
        ("cluster.local.", A, OK, []),
        ("foo.cluster.local.", A, NX, []),
        ("a.b.c.d.e.default.svc.cluster.local.", A, NX, []),
    ],
)
def test_resolve(qname: str, qtype: str, rcode: int, answer: list[tuple[str, str, str]]) -> None:
    got = resolve(qname, qtype, View())
    assert (got.rcode, got.answer) == (rcode, [Record(*r) for r in answer])


def test_srv_answers_carry_the_targets_addresses() -> None:
    got = resolve("_pg._tcp.db.default.svc.cluster.local.", "SRV", View())
    assert got.additional == [
        Record("db-0.db.default.svc.cluster.local.", "A", "10.244.0.9"),
        Record("10-244-0-10.db.default.svc.cluster.local.", "A", "10.244.0.10"),
    ]


@pytest.mark.parametrize(
    "qname", ["example.org.", "web.default.svc.cluster.local.example.org.", "local."]
)
def test_other_names_are_forwarded(qname: str) -> None:
    assert resolve(qname, A, View()).rcode == FORWARD


def test_other_cluster_domain() -> None:
    assert resolve("web.default.svc.lab.internal", A, View(), zone="lab.internal").answer == [
        Record("web.default.svc.lab.internal.", A, "10.96.0.20")
    ]
    assert resolve("web.default.svc.cluster.local", A, View(), zone="lab.internal").rcode == FORWARD


def test_wire_answers_are_authoritative_with_soa_on_negative_ones() -> None:
    server = DNSServer(View(), upstreams=[])
    reply = server.answer(dns.message.make_query("nope.default.svc.cluster.local", "A"))
    assert reply is not None
    assert reply.rcode() == NX and reply.flags & dns.flags.AA
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
    assert server.answer(dns.message.make_query("example.org", "A")) is None


def test_upstreams_from_resolv_conf(tmp_path: Any) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "search example\nnameserver 192.0.2.1\n# x\nnameserver 192.0.2.2\noptions ndots:2\n"
    )
    assert upstream_resolvers(conf) == ["192.0.2.1", "192.0.2.2"]
    assert upstream_resolvers(tmp_path / "absent") == []


@pytest.mark.parametrize(
    "qname,rdtype,edns",
    [
        ("web.default.svc.cluster.local", "A", -1),
        ("WeB.Default.svc.cluster.local", "A", 0),  # any case: the question is echoed
        ("db.default.svc.cluster.local", "A", 0),  # headless: the ready endpoints
    ],
)
def test_precomputed_answers_are_the_general_paths_bytes(
    qname: str, rdtype: str, edns: int
) -> None:
    server = DNSServer(View(), upstreams=[])
    for ns, name in server.view.services:
        server.precompute(ns, name)
    query = dns.message.make_query(qname, rdtype, use_edns=edns, id=4321)
    query.flags |= dns.flags.RD
    fast = server.fast(query.to_wire())
    general = server.answer(query)
    assert general is not None and fast is not None
    if len(general.answer[0]) == 1:
        assert fast == general.to_wire()
    else:  # both shuffle the records of an RRset: the same bytes in some order
        assert dns.message.from_wire(fast) == dns.message.from_wire(general.to_wire())
        assert len(fast) == len(general.to_wire())


def test_questions_the_precomputed_answers_do_not_cover_take_the_general_path() -> None:
    server = DNSServer(View(), upstreams=[])
    for ns, name in server.view.services:
        server.precompute(ns, name)
    for qname, rdtype in (
        ("web.default.svc.cluster.local", "AAAA"),
        ("_http._tcp.web.default.svc.cluster.local", "SRV"),
        ("ext.other.svc.cluster.local", "A"),  # a CNAME
        ("nope.default.svc.cluster.local", "A"),
        ("example.org", "A"),
    ):
        assert server.fast(dns.message.make_query(qname, rdtype).to_wire()) is None, qname
    assert server.fast(b"\x00\x01garbage") is None


def test_a_changed_service_gets_its_new_answer_at_once() -> None:
    view = View()
    server = DNSServer(view, upstreams=[])
    server.changed(view.services[("default", "web")])
    wire = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
    assert dns.message.from_wire(server.answer_wire(wire, tcp=False)).answer[0][0].address == (
        "10.96.0.20"
    )
    view.services[("default", "web")] = svc("web", clusterIP="10.96.0.99")
    server.changed(view.services[("default", "web")])
    reply = dns.message.from_wire(server.answer_wire(wire, tcp=False))
    assert reply.answer[0][0].address == "10.96.0.99"
    del view.services[("default", "web")]
    server.changed(svc("web"))
    assert server.fast(wire) is None
    assert dns.message.from_wire(server.answer_wire(wire, tcp=False)).rcode() == NX
