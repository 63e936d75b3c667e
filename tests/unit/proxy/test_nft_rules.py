"""The nftables mode's rendered table, over tables of Services and EndpointSlices.

Each case names what a packet meets: which map element its address, protocol
and port hit, and what the chains it jumps to do, in kube-proxy's words.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy import nft_rules as nr
from proxy.rules import Endpoint, Node, service_ports
from tests.unit.proxy.test_rules import endpoint_slice, ep, service

NODE = Node("node-a", ("192.168.50.2",), "10.244.0.0/16")


def built(services: list[dict[str, Any]], slices: list[dict[str, Any]], node: Node = NODE):
    return nr.build(services, slices, node)


def sp_of(svc: dict[str, Any]):
    return service_ports(svc)[0]


def test_chain_names_are_kube_proxys_hash_then_the_readable_name() -> None:
    sp = sp_of(service())
    name = nr.service_chain(sp)
    assert name.startswith("service-") and name.endswith("-default/web/tcp/http")
    assert len(name.split("-", 2)[1]) == 8
    e = nr.endpoint_chain(sp, Endpoint("10.244.0.5", 8080))
    assert e.endswith("-default/web/tcp/http__10.244.0.5/8080")
    long = sp_of(service("x" * 63, ns="n" * 63, ports=[{"name": "p" * 15, "port": 1}]))
    assert len(nr.endpoint_chain(long, Endpoint("10.244.0.5", 8080))) <= nr.CHAIN_MAX


CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, dict[str, str]]]] = [
    (
        "ready endpoints only, at random",
        service(),
        [endpoint_slice("web", ep("10.244.0.5"), ep("10.244.0.6"), ep("10.244.0.7", False))],
        {"service-ips": {"10.96.0.20 . tcp . 80": "goto service-"}},
    ),
    (
        "no ready endpoint: rejected",
        service(),
        [endpoint_slice("web", ep("10.244.0.7", False))],
        {"no-endpoint-services": {"10.96.0.20 . tcp . 80": "goto reject-chain"}},
    ),
    (
        "NodePort: through the external chain",
        service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
        [endpoint_slice("web", ep("10.244.0.5"))],
        {
            "service-ips": {"10.96.0.20 . tcp . 80": "goto service-"},
            "service-nodeports": {"tcp . 30080": "goto external-"},
        },
    ),
    (
        "NodePort, Local policy, endpoints elsewhere only: dropped",
        service(
            type="NodePort",
            externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        ),
        [endpoint_slice("web", ep("10.244.0.5", node="node-b"))],
        {
            "service-ips": {"10.96.0.20 . tcp . 80": "goto service-"},
            "service-nodeports": {"tcp . 30080": "goto external-"},
            "no-endpoint-nodeports": {"tcp . 30080": "drop"},
        },
    ),
    (
        "headless: nothing",
        service(ip="None"),
        [endpoint_slice("web", ep("10.244.0.5"))],
        {},
    ),
]


@pytest.mark.parametrize("svc,slices,elements", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_map_elements(
    svc: dict[str, Any], slices: list[dict[str, Any]], elements: dict[str, dict[str, str]]
) -> None:
    rs = built([svc], slices)
    for m in nr.MAPS:
        want = elements.get(m, {})
        assert set(rs.maps[m]) == set(want), m
        for key, verdict in want.items():
            assert rs.maps[m][key].startswith(verdict), (m, key)


def test_random_balancing_over_ready_endpoints_and_hairpin_masquerade() -> None:
    svc = service()
    rs = built(
        [svc], [endpoint_slice("web", ep("10.244.0.5"), ep("10.244.0.6"), ep("10.0.0.9", False))]
    )
    sp = sp_of(svc)
    one, two = (nr.endpoint_chain(sp, Endpoint(ip, 8080)) for ip in ("10.244.0.5", "10.244.0.6"))
    assert rs.chains[nr.service_chain(sp)] == [
        "ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 2 vmap {{ 0 : goto {one} , 1 : goto {two} }}",
    ]
    assert rs.chains[one] == [
        "ip saddr 10.244.0.5 jump mark-for-masquerade",
        "meta l4proto tcp dnat to 10.244.0.5:8080",
    ]
    assert not any("10.0.0.9" in c for c in rs.chains)


def test_client_ip_affinity_uses_a_timed_set_per_endpoint() -> None:
    svc = service(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    rs = built([svc], [endpoint_slice("web", ep("10.244.0.5"))])
    sp = sp_of(svc)
    e = Endpoint("10.244.0.5", 8080)
    aff, chain = nr.affinity_set(sp, e), nr.endpoint_chain(sp, e)
    assert rs.sets == {aff: 60}
    assert rs.chains[nr.service_chain(sp)][1:] == [f"ip saddr @{aff} goto {chain}", f"goto {chain}"]
    assert f"update @{aff} {{ ip saddr }}" in rs.chains[chain]
    text = nr.full_text(rs, NODE)
    assert "flags dynamic,timeout ; timeout 60s" in text


def test_node_ports_on_node_addresses_never_loopback() -> None:
    text = nr.full_text(built([], []), Node("n", ("127.0.0.1", "192.168.50.2"), ""))
    assert "add element ip skiff nodeport-ips { 192.168.50.2 }" in text
    assert "127.0.0.1" not in text
    bare = nr.fixed_chains(Node("n", (), ""))
    assert bare[nr.SERVICES][1].startswith("fib daddr type local ip daddr != 127.0.0.0/8")


def test_full_text_recreates_only_our_table_in_one_transaction() -> None:
    text = nr.render([service()], [endpoint_slice("web", ep("10.244.0.5"))], NODE)
    lines = text.splitlines()
    assert lines[:3] == ["add table ip skiff", "delete table ip skiff", "add table ip skiff"]
    assert all(line.endswith("table ip skiff") or " ip skiff " in line for line in lines)
    assert text == nr.render([service()], [endpoint_slice("web", ep("10.244.0.5"))], NODE)


def test_full_text_over_an_existing_table_keeps_affinity_members_and_drops_the_stale() -> None:
    sticky = service(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    rs = built([sticky], [endpoint_slice("web", ep("10.244.0.5"), ep("10.244.0.6"))])
    sp = sp_of(sticky)
    kept, changed = (nr.affinity_set(sp, Endpoint(ip, 8080)) for ip in ("10.244.0.5", "10.244.0.6"))
    old_chain = nr.endpoint_chain(sp, Endpoint("10.244.0.9", 8080))
    there = nr.Existing(
        chains=frozenset({*rs.chains, old_chain}),
        sets={nr.NODEPORT_IPS: None, kept: 60, changed: 10800, "affinity-gone": 60},
    )
    lines = nr.full_text(rs, NODE, there).splitlines()
    assert lines[:2] == ["add table ip skiff", "flush table ip skiff"]
    assert "delete table ip skiff" not in lines
    # every map and the node's addresses are written afresh; the sets of clients are not
    assert all(f"flush map ip skiff {m}" in lines for m in nr.MAPS)
    assert f"delete set ip skiff {kept}" not in lines
    assert f"flush set ip skiff {kept}" not in lines
    # a timeout nft cannot change in place: the set is made anew, before it is declared
    assert lines.index(f"delete set ip skiff {changed}") < lines.index(nr._set_decl(changed, 60))
    # what is no longer rendered goes, after the rules that named it are rewritten
    assert lines[-2:] == [f"delete chain ip skiff {old_chain}", "delete set ip skiff affinity-gone"]
    assert f"delete set ip skiff {nr.NODEPORT_IPS}" not in lines


def test_one_endpoint_change_names_only_that_services_chains_and_elements() -> None:
    services = [service(f"s{i}", ip=f"10.96.1.{i}") for i in range(50)]
    slices = [endpoint_slice(f"s{i}", ep("10.244.0.5"), ep("10.244.0.6")) for i in range(50)]
    keys = [("default", f"s{i}") for i in range(50)]
    frags = {
        k: nr.service_fragment(s, [sl], NODE)
        for k, s, sl in zip(keys, services, slices, strict=True)
    }
    applied = nr.assemble([frags[k] for k in sorted(frags)], NODE)
    new = dict(frags)
    new[keys[7]] = nr.service_fragment(services[7], [endpoint_slice("s7", ep("10.244.0.6"))], NODE)
    desired = nr.reassemble(applied, frags, new, {keys[7]})
    assert desired == nr.assemble([new[k] for k in sorted(new)], NODE)
    text = nr.partial_text(applied, desired)
    assert nr.delta_text(frags, new, {keys[7]}) == text  # from the fragments alone
    lines = text.splitlines()
    assert all("default/s7/" in line for line in lines), text
    gone = nr.endpoint_chain(sp_of(services[7]), Endpoint("10.244.0.5", 8080))
    assert lines[-2:] == [f"flush chain ip skiff {gone}", f"delete chain ip skiff {gone}"]
    assert nr.partial_text(desired, desired) == ""


def test_a_changed_affinity_timeout_needs_a_full_sync() -> None:
    def rs(timeout: int):
        svc = service(
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": timeout}},
        )
        return built([svc], [endpoint_slice("web", ep("10.244.0.5"))])

    assert nr.needs_full(rs(60), rs(120)) and not nr.needs_full(rs(60), rs(60))
