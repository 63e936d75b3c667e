"""The proxy's rendered ruleset, over tables of Services and EndpointSlices.

Each test reads the iptables-restore text back into chains and rules and
checks what a packet would meet, in kube-proxy's words.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.rules import (
    JUMPS,
    Endpoint,
    Node,
    chains_in,
    node_from_api,
    probability,
    render,
    sep_chain,
    service_ports,
    svc_chain,
)

NODE = Node("node-a", ("192.168.50.2",), "10.244.0.0/16")


def service(
    name: str = "web",
    *,
    ns: str = "default",
    ip: str = "10.96.0.20",
    ports: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "clusterIP": ip,
            "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}],
            **spec,
        },
        "status": status,
    }


def ep(ip: str, ready: bool | None = True, node: str = "node-a") -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    return {"addresses": [ip], "conditions": conditions, "nodeName": node}


def endpoint_slice(
    svc: str = "web",
    *endpoints: dict[str, Any],
    ns: str = "default",
    name: str = "",
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": ns,
            "name": name or svc,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


class Ruleset:
    """The rendered text, read back: chains declared, rules per chain, chains deleted."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.declared: dict[str, list[str]] = {}
        self.rules: dict[tuple[str, str], list[str]] = {}
        self.deleted: dict[str, list[str]] = {}
        table = ""
        assert text.endswith("COMMIT\n")
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:]
                self.declared[table], self.deleted[table] = [], []
            elif line.startswith(":"):
                self.declared[table].append(line[1:].split()[0])
            elif line.startswith("-A "):
                chain, rule = line[3:].split(" ", 1)
                assert chain in self.declared[table], f"{chain} used before it is declared"
                self.rules.setdefault((table, chain), []).append(rule)
            elif line.startswith("-X "):
                self.deleted[table].append(line[3:])
            else:
                assert line == "COMMIT", line

    def nat(self, chain: str) -> list[str]:
        return self.rules.get(("nat", chain), [])

    def filter(self, chain: str) -> list[str]:
        return self.rules.get(("filter", chain), [])


def rendered(services: list, slices: list, node: Node = NODE, **kw: Any) -> Ruleset:
    return Ruleset(render(services, slices, node, **kw))


def test_chain_names_are_kube_proxys_hashes_within_28_characters() -> None:
    """The same hash as kube-proxy (its own tests pin these two for ns1/svc1:p80)."""
    (sp,) = service_ports(
        service("svc1", ns="ns1", ports=[{"name": "p80", "port": 80, "protocol": "TCP"}])
    )
    assert svc_chain(sp) == "SKIFF-SVC-XPGD46QRK7WJZT7O"
    assert sep_chain(sp, Endpoint("10.180.0.1", 80)) == "SKIFF-SEP-SXIVWICOYRO3J4NJ"
    rules = rendered([service()], [endpoint_slice("web", ep("10.244.0.5"))])
    for table in ("nat", "filter"):
        assert all(len(c) <= 28 for c in rules.declared[table])


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, []),
        (2, ["0.5000000000"]),
        (3, ["0.3333333333", "0.5000000000"]),
        (4, ["0.2500000000", "0.3333333333", "0.5000000000"]),
    ],
)
def test_random_balancing_over_ready_endpoints(n: int, expected: list[str]) -> None:
    ips = [f"10.244.0.{10 + i}" for i in range(n)]
    slice_ = endpoint_slice("web", *(ep(ip) for ip in ips), ep("10.244.0.99", ready=False))
    rules = rendered([service()], [slice_])
    (sp,) = service_ports(service())
    chain = rules.nat(svc_chain(sp))
    to_endpoints = [r for r in chain if " -> " in r]
    assert len(to_endpoints) == n  # the unready endpoint gets no share
    chances = [r.split("--probability ")[1].split()[0] for r in to_endpoints if "statistic" in r]
    assert chances == expected
    assert "statistic" not in to_endpoints[-1]  # the last one always matches
    assert [r.split(" -j ")[1] for r in to_endpoints] == [sep_chain(sp, e) for e in endpoints(*ips)]
    for ip in ips:
        assert any(f"--to-destination {ip}:8080" in r for r in rules.text.splitlines())
    assert "10.244.0.99" not in rules.text


def endpoints(*ips: str) -> list[Endpoint]:
    return [Endpoint(ip, 8080, "node-a") for ip in ips]


def test_probability_is_one_over_what_is_left() -> None:
    assert probability(2) == "0.5000000000"
    assert probability(7) == "0.1428571429"


def test_endpoint_without_ready_condition_counts_as_ready() -> None:
    rules = rendered([service()], [endpoint_slice("web", ep("10.244.0.5", ready=None))])
    assert "--to-destination 10.244.0.5:8080" in rules.text


def test_cluster_ip_rules() -> None:
    rules = rendered([service()], [endpoint_slice("web", ep("10.244.0.5"))])
    (sp,) = service_ports(service())
    assert rules.nat("SKIFF-SERVICES")[0] == (
        '-d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http cluster IP"'
        f" -m tcp --dport 80 -j {svc_chain(sp)}"
    )
    # Traffic to the ClusterIP from outside the pod network is masqueraded (first rule).
    assert rules.nat(svc_chain(sp))[0].startswith("! -s 10.244.0.0/16 -d 10.96.0.20/32 -p tcp")
    assert rules.nat(svc_chain(sp))[0].endswith("-j SKIFF-MARK-MASQ")
    sep = sep_chain(sp, endpoints("10.244.0.5")[0])
    assert rules.nat(sep) == [
        # Hairpin: the pod reaching itself through its Service is masqueraded.
        '-s 10.244.0.5/32 -m comment --comment "default/web:http" -j SKIFF-MARK-MASQ',
        '-p tcp -m comment --comment "default/web:http" -j DNAT --to-destination 10.244.0.5:8080',
    ]
    assert rules.filter("SKIFF-SERVICES") == []


def test_masquerade_chains() -> None:
    rules = rendered([], [])
    assert rules.nat("SKIFF-MARK-MASQ") == ["-j MARK --or-mark 0x4000"]
    assert rules.nat("SKIFF-POSTROUTING") == [
        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-j MARK --xor-mark 0x4000",
        '-m comment --comment "skiff service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    assert any("--mark 0x4000/0x4000 -j ACCEPT" in r for r in rules.filter("SKIFF-FORWARD"))


def test_no_cluster_cidr_no_off_cluster_masquerade() -> None:
    rules = rendered([service()], [endpoint_slice("web", ep("10.244.0.5"))], Node("node-a", (), ""))
    (sp,) = service_ports(service())
    assert not any(r.startswith("! -s") for r in rules.nat(svc_chain(sp)))


@pytest.mark.parametrize(
    ("slices", "why"),
    [
        ([], "no slice at all"),
        ([endpoint_slice("web")], "an empty slice"),
        ([endpoint_slice("web", ep("10.244.0.5", ready=False))], "only unready endpoints"),
        ([endpoint_slice("other", ep("10.244.0.5"))], "another Service's slice"),
        ([endpoint_slice("web", ep("10.244.0.5"), ns="elsewhere")], "another namespace"),
        (
            [endpoint_slice("web", ep("10.244.0.5"), ports=[{"name": "grpc", "port": 9}])],
            "no port of that name",
        ),
    ],
)
def test_service_without_ready_endpoints_is_rejected(slices: list, why: str) -> None:
    rules = rendered(
        [service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])], slices
    )
    (sp,) = service_ports(service())
    assert rules.filter("SKIFF-SERVICES") == [
        '-d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http has no endpoints"'
        " -m tcp --dport 80 -j REJECT"
    ], why
    assert rules.filter("SKIFF-EXTERNAL-SERVICES") == [
        '-p tcp -m comment --comment "default/web:http has no endpoints"'
        " -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j REJECT"
    ], why
    assert svc_chain(sp) not in rules.declared["nat"], why
    assert rules.nat("SKIFF-NODEPORTS") == [], why


def test_session_affinity_client_ip() -> None:
    svc = service(
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    rules = rendered([svc], [endpoint_slice("web", ep("10.244.0.5"), ep("10.244.0.6"))])
    (sp,) = service_ports(svc)
    a, b = endpoints("10.244.0.5", "10.244.0.6")
    chain = rules.nat(svc_chain(sp))
    sticky = [r for r in chain if "--rcheck" in r]
    # Sticky checks come before the random choice, one per endpoint.
    assert chain.index(sticky[-1]) < next(i for i, r in enumerate(chain) if "statistic" in r)
    assert sticky[0] == (
        '-m comment --comment "default/web:http -> 10.244.0.5:8080"'
        f" -m recent --rcheck --seconds 60 --reap --name {sep_chain(sp, a)}"
        f" --mask 255.255.255.255 --rsource -j {sep_chain(sp, a)}"
    )
    assert rules.nat(sep_chain(sp, b))[1] == (
        '-p tcp -m comment --comment "default/web:http"'
        f" -m recent --set --name {sep_chain(sp, b)} --mask 255.255.255.255 --rsource"
        " -j DNAT --to-destination 10.244.0.6:8080"
    )
    default = service(sessionAffinity="ClientIP")
    assert "--seconds 10800 " in render([default], [endpoint_slice("web", ep("10.244.0.5"))], NODE)


def test_node_port_on_every_node_address() -> None:
    svc = service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    node = Node("node-a", ("192.168.50.2", "10.0.0.2", "127.0.0.1"), "10.244.0.0/16")
    rules = rendered([svc], [endpoint_slice("web", ep("10.244.0.5"))], node)
    (sp,) = service_ports(svc)
    ext = "SKIFF-EXT-" + svc_chain(sp).removeprefix("SKIFF-SVC-")
    assert rules.nat("SKIFF-NODEPORTS") == [
        f'-p tcp -m comment --comment "default/web:http" -m tcp --dport 30080 -j {ext}'
    ]
    assert rules.nat(ext) == [
        '-m comment --comment "masquerade traffic for default/web:http external destinations"'
        " -j SKIFF-MARK-MASQ",
        f"-j {svc_chain(sp)}",
    ]
    why = (
        '-m comment --comment "skiff service nodeports;'
        ' NOTE: this must be the last rule in this chain"'
    )
    # Last in SKIFF-SERVICES, one jump per node address; loopback is left out.
    assert rules.nat("SKIFF-SERVICES")[-2:] == [
        f"-d 192.168.50.2/32 {why} -j SKIFF-NODEPORTS",
        f"-d 10.0.0.2/32 {why} -j SKIFF-NODEPORTS",
    ]
    bare = rendered([svc], [endpoint_slice("web", ep("10.244.0.5"))], Node("node-a"))
    assert bare.nat("SKIFF-SERVICES")[-1] == (
        f"! -d 127.0.0.0/8 {why} -m addrtype --dst-type LOCAL -j SKIFF-NODEPORTS"
    )


def test_external_and_load_balancer_ips() -> None:
    svc = service(
        type="LoadBalancer",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        externalIPs=["192.168.50.9"],
        status={"loadBalancer": {"ingress": [{"ip": "192.168.50.2"}]}},
    )
    rules = rendered([svc], [endpoint_slice("web", ep("10.244.0.5"))])
    (sp,) = service_ports(svc)
    ext = "SKIFF-EXT-" + svc_chain(sp).removeprefix("SKIFF-SVC-")
    services = rules.nat("SKIFF-SERVICES")
    assert (
        '-d 192.168.50.9/32 -p tcp -m comment --comment "default/web:http external IP"'
        f" -m tcp --dport 80 -j {ext}"
    ) in services
    assert (
        '-d 192.168.50.2/32 -p tcp -m comment --comment "default/web:http loadbalancer IP"'
        f" -m tcp --dport 80 -j {ext}"
    ) in services
    empty = rendered([svc], [])
    assert len(empty.filter("SKIFF-EXTERNAL-SERVICES")) == 3  # external IP, LB IP, NodePort


@pytest.mark.parametrize(
    "svc",
    [
        service(ip="None"),  # headless: DNS answers with the pods, no virtual IP
        service(ip="", type="ExternalName", externalName="example.test"),
        service(ip=""),  # no ClusterIP allocated yet
        service(ip="fd00::10"),  # IPv6: the ip6tables ruleset, not this one
    ],
)
def test_services_without_a_virtual_ip_get_no_rules(svc: dict) -> None:
    rules = rendered([svc], [endpoint_slice("web", ep("10.244.0.5"))])
    assert "default/web" not in rules.text


def test_named_ports_and_several_slices() -> None:
    """Each slice says what the port name means for its endpoints; duplicates count once."""
    svc = service(
        ports=[
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]
    )
    slices = [
        endpoint_slice(
            "web",
            ep("10.244.0.5"),
            name="web-a",
            ports=[
                {"name": "http", "port": 8080},
                {"name": "dns", "port": 5353, "protocol": "UDP"},
            ],
        ),
        endpoint_slice(
            "web",
            ep("10.244.1.5"),
            ep("10.244.0.5"),
            name="web-b",
            ports=[{"name": "http", "port": 9090}],
        ),
        endpoint_slice(
            "web", ep("10.244.0.5"), name="web-c", ports=[{"name": "http", "port": 8080}]
        ),
    ]
    text = render([svc], slices, NODE)
    dnat = sorted(
        line.split("--to-destination ")[1] for line in text.splitlines() if "DNAT" in line
    )
    assert dnat == ["10.244.0.5:5353", "10.244.0.5:8080", "10.244.0.5:9090", "10.244.1.5:9090"]
    assert '-p udp -m comment --comment "default/web:dns cluster IP" -m udp --dport 53' in text


def test_order_of_input_does_not_change_output() -> None:
    services = [service("a", ip="10.96.0.1"), service("b", ip="10.96.0.2")]
    slices = [
        endpoint_slice("a", ep("10.244.0.5"), ep("10.244.0.6")),
        endpoint_slice("b", ep("10.244.0.7")),
    ]
    assert render(services, slices, NODE) == render(services[::-1], slices[::-1], NODE)


def test_stale_chains_of_our_own_are_flushed_and_deleted_others_untouched() -> None:
    existing = {
        "nat": {
            "PREROUTING",
            "SKIFF-SERVICES",
            "SKIFF-SVC-OLDOLDOLDOLDOLD1",
            "SKIFF-SEP-OLDOLDOLDOLDOLD2",
            "SKIFF-HOSTPORTS",  # the runtime's hostPort chain
            "KUBE-SVC-XPGD46QRK7WJZT7O",  # a real kube-proxy's
            "MY-CHAIN",
        },
        "filter": {"INPUT", "SKIFF-SERVICES", "DOCKER-USER"},
    }
    rules = rendered([service()], [endpoint_slice("web", ep("10.244.0.5"))], existing=existing)
    assert sorted(rules.deleted["nat"]) == [
        "SKIFF-SEP-OLDOLDOLDOLDOLD2",
        "SKIFF-SVC-OLDOLDOLDOLDOLD1",
    ]
    assert rules.deleted["filter"] == []
    # Declared (so flushed) before being deleted; nobody else's chain is named at all.
    assert "SKIFF-SVC-OLDOLDOLDOLDOLD1" in rules.declared["nat"]
    for other in (
        "SKIFF-HOSTPORTS",
        "KUBE-SVC-XPGD46QRK7WJZT7O",
        "MY-CHAIN",
        "PREROUTING",
        "DOCKER-USER",
    ):
        assert other not in rules.text
    # Every chain in use is declared, so a re-render replaces all of its rules.
    (sp,) = service_ports(service())
    assert svc_chain(sp) in rules.declared["nat"]


def test_chains_in_reads_iptables_save() -> None:
    saved = """# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:SKIFF-SERVICES - [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:SKIFF-SVC-ABC - [0:0]
-A SKIFF-SVC-ABC -j RETURN
COMMIT
"""
    assert chains_in(saved) == {
        "filter": {"INPUT", "SKIFF-SERVICES"},
        "nat": {"PREROUTING", "SKIFF-SVC-ABC"},
    }


def test_external_traffic_policy_local() -> None:
    svc = service(
        type="NodePort",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        externalTrafficPolicy="Local",
    )
    here, there = ep("10.244.0.5", node="node-a"), ep("10.244.1.5", node="node-b")
    rules = rendered([svc], [endpoint_slice("web", here, there)])
    (sp,) = service_ports(svc)
    svl = "SKIFF-SVL-" + svc_chain(sp).removeprefix("SKIFF-SVC-")
    ext = "SKIFF-EXT-" + svc_chain(sp).removeprefix("SKIFF-SVC-")
    assert rules.nat(ext) == [
        f'-s 10.244.0.0/16 -m comment --comment "pod traffic for default/web:http external'
        f' destinations" -j {svc_chain(sp)}',
        '-m comment --comment "masquerade LOCAL traffic for default/web:http external'
        ' destinations" -m addrtype --src-type LOCAL -j SKIFF-MARK-MASQ',
        '-m comment --comment "route LOCAL traffic for default/web:http external'
        f' destinations" -m addrtype --src-type LOCAL -j {svc_chain(sp)}',
        f"-j {svl}",
    ]
    # Outside clients keep their address and reach only this node's endpoint.
    assert [r for r in rules.nat(svl) if "DNAT" in r or "SKIFF-SEP" in r] == [
        f'-m comment --comment "default/web:http -> 10.244.0.5:8080" -j '
        f"{sep_chain(sp, endpoints('10.244.0.5')[0])}"
    ]
    # The ClusterIP still balances over both.
    assert len([r for r in rules.nat(svc_chain(sp)) if " -> " in r]) == 2
    # On a node with none of the endpoints, outside traffic is dropped (not rejected).
    elsewhere = rendered([svc], [endpoint_slice("web", there)])
    assert elsewhere.filter("SKIFF-EXTERNAL-SERVICES") == [
        '-p tcp -m comment --comment "default/web:http has no local endpoints"'
        " -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP"
    ]


def test_internal_traffic_policy_local() -> None:
    svc = service(internalTrafficPolicy="Local")
    there = ep("10.244.1.5", node="node-b")
    rules = rendered([svc], [endpoint_slice("web", ep("10.244.0.5"), there)])
    (sp,) = service_ports(svc)
    svl = "SKIFF-SVL-" + svc_chain(sp).removeprefix("SKIFF-SVC-")
    assert rules.nat("SKIFF-SERVICES")[0].endswith(f"-j {svl}")
    assert svc_chain(sp) not in rules.declared["nat"]
    assert "10.244.1.5" not in "".join(rules.nat(svl))
    elsewhere = rendered([svc], [endpoint_slice("web", there)])
    assert elsewhere.filter("SKIFF-SERVICES")[0].endswith("-j DROP")


def test_node_from_api() -> None:
    node = {
        "metadata": {"name": "node-a"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "192.168.50.2"},
                {"type": "InternalIP", "address": "fd00::2"},
                {"type": "ExternalIP", "address": "203.0.113.7"},
                {"type": "Hostname", "address": "node-a"},
            ]
        },
    }
    assert node_from_api(node, cluster_cidr="10.244.0.0/16") == Node(
        "node-a", ("192.168.50.2", "203.0.113.7"), "10.244.0.0/16"
    )


def test_jumps_name_only_our_chains() -> None:
    for table, builtin, spec in JUMPS:
        assert table in ("nat", "filter") and builtin.isupper()
        assert spec.split(" -j ")[-1].startswith("SKIFF-")


def test_an_endpoint_listed_twice_gets_one_chain() -> None:
    """Two slices may name the same address (a slice being replaced): one endpoint, one share."""
    slices = [
        endpoint_slice("web", ep("10.244.0.5", node="node-a"), name="web-1"),
        endpoint_slice("web", ep("10.244.0.5", node=""), ep("10.244.0.6"), name="web-2"),
    ]
    rules = rendered([service()], slices)
    (sp,) = service_ports(service())
    assert len([r for r in rules.nat(svc_chain(sp)) if " -> " in r]) == 2
    assert len(rules.declared["nat"]) == len(set(rules.declared["nat"]))
