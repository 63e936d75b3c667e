"""The proxy loop's decisions: what one sync restores, given what was loaded before.

A partial sync must name only what changed (kube-proxy's minimal restore),
and applying it on top of the previous ruleset must give exactly what a full
render gives, so that a restarted proxy converges to the same rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy import rules
from proxy.rules import Node, full_text, partial_text, sep_chain, service_ports, svc_chain
from proxy.sync import ChangeTracker, decide, wants_full_sync

NODE = Node("node-a", ("192.168.50.2",), "10.244.0.0/16")


def service(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}], **spec},
    }


def endpoint_slice(svc: str, *ips: str, name: str = "") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "default",
            "name": name or svc,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


class Cluster:
    """Services and slices by Service key, as the informer caches hold them."""

    def __init__(self, n: int) -> None:
        self.services = {
            ("default", f"s{i}"): service(f"s{i}", f"10.96.1.{i + 1}") for i in range(n)
        }
        self.slices = {
            ("default", f"s{i}"): [
                endpoint_slice(f"s{i}", f"10.244.1.{i + 1}", f"10.244.2.{i + 1}")
            ]
            for i in range(n)
        }

    def decide(self, prev: rules.Ruleset | None, frags: dict, changed: set) -> Any:
        return decide(
            services=self.services,
            slices_of=lambda k: self.slices.get(k, []),
            node=NODE,
            fragments=frags,
            applied=prev,
            changed=changed,
        )


def apply(ruleset: rules.Ruleset, text: str) -> rules.Ruleset:
    """What iptables-restore --noflush does to our chains with `text` (a small model of it)."""
    out = {t: {c: list(r) for c, r in chains.items()} for t, chains in ruleset.items()}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            out.setdefault(table, {})
        elif line.startswith(":"):
            out[table][line[1:].split()[0]] = []
        elif line.startswith("-A "):
            chain, spec = line[3:].split(" ", 1)
            out[table][chain].append(spec)
        elif line.startswith("-D "):
            chain, spec = line[3:].split(" ", 1)
            out[table][chain].remove(spec)
        elif line.startswith("-I "):
            chain, pos, spec = line[3:].split(" ", 2)
            out[table][chain].insert(int(pos) - 1, spec)
        elif line.startswith("-X "):
            del out[table][line[3:]]
        else:
            assert line == "COMMIT", line
    return out


def test_full_sync_writes_everything_and_partial_nothing_when_unchanged() -> None:
    cluster = Cluster(5)
    first = cluster.decide(None, {}, set())
    assert first.full and first.text == full_text(first.ruleset)
    assert first.text == rules.render(
        cluster.services.values(), [s for v in cluster.slices.values() for s in v], NODE
    )
    again = cluster.decide(first.ruleset, first.fragments, set())
    assert again.text == "" and not again.full


def test_one_endpoint_change_names_only_that_services_chains() -> None:
    cluster = Cluster(50)
    first = cluster.decide(None, {}, set())
    key = ("default", "s7")
    cluster.slices[key] = [endpoint_slice("s7", "10.244.1.8", "10.244.3.8")]  # one replaced
    plan = cluster.decide(first.ruleset, first.fragments, {key})
    assert plan.rerendered == 1
    (sp,) = service_ports(cluster.services[key])
    named = {line[1:].split()[0] for line in plan.text.splitlines() if line.startswith(":")}
    gone = rules.Endpoint("10.244.2.8", 8080)
    new = rules.Endpoint("10.244.3.8", 8080)
    assert named == {svc_chain(sp), sep_chain(sp, gone), sep_chain(sp, new)}
    assert f"-X {sep_chain(sp, gone)}" in plan.text.splitlines()
    assert "SKIFF-SERVICES" not in plan.text  # the ClusterIP's jump did not change
    # Applied on top of the old rules, it is exactly a fresh full render.
    assert (
        apply(first.ruleset, plan.text) == plan.ruleset == cluster.decide(None, {}, set()).ruleset
    )


def test_restore_size_does_not_grow_with_the_number_of_services() -> None:
    sizes = []
    for n in (50, 2000):
        cluster = Cluster(n)
        first = cluster.decide(None, {}, set())
        key = ("default", "s7")
        cluster.slices[key] = [endpoint_slice("s7", "10.244.1.8", "10.244.3.8")]
        sizes.append(len(cluster.decide(first.ruleset, first.fragments, {key}).text))
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize(
    "change",
    ["service added", "service deleted", "endpoints gone", "endpoints back", "nodeport added"],
)
def test_shared_chains_are_edited_in_place_and_converge(change: str) -> None:
    cluster = Cluster(20)
    if change == "endpoints back":
        cluster.slices[("default", "s3")] = [endpoint_slice("s3")]
    first = cluster.decide(None, {}, set())
    key = ("default", "s3")
    if change == "service added":
        key = ("default", "s3b")
        cluster.services[key] = service("s3b", "10.96.2.1")
        cluster.slices[key] = [endpoint_slice("s3b", "10.244.9.1")]
    elif change == "service deleted":
        del cluster.services[key]
    elif change == "endpoints gone":
        cluster.slices[key] = [endpoint_slice("s3")]
    elif change == "endpoints back":
        cluster.slices[key] = [endpoint_slice("s3", "10.244.9.9")]
    else:
        svc = cluster.services[key]
        svc["spec"]["type"] = "NodePort"
        svc["spec"]["ports"][0]["nodePort"] = 30003
    plan = cluster.decide(first.ruleset, first.fragments, {key})
    assert ":SKIFF-SERVICES" not in plan.text  # edited rule by rule, never rewritten
    assert apply(first.ruleset, plan.text) == cluster.decide(None, {}, set()).ruleset


def test_a_node_address_change_or_the_hour_forces_a_full_sync() -> None:
    other = Node("node-a", ("192.168.50.3",), "10.244.0.0/16")
    kw = {"since_full_sync": 10.0, "full_sync_period": 3600.0}
    assert wants_full_sync(synced=False, node=NODE, last_node=NODE, **kw)
    assert not wants_full_sync(synced=True, node=NODE, last_node=NODE, **kw)
    assert wants_full_sync(synced=True, node=other, last_node=NODE, **kw)
    assert wants_full_sync(
        synced=True, node=NODE, last_node=NODE, since_full_sync=3600.0, full_sync_period=3600.0
    )


def test_change_tracker_records_services_and_the_services_of_slices() -> None:
    tracker = ChangeTracker()
    tracker.service(service("a", "10.96.0.1"))
    tracker.endpoint_slice(endpoint_slice("b", name="b-x1"))
    tracker.endpoint_slice({"metadata": {"namespace": "default", "name": "unowned"}})
    assert tracker.take() == {("default", "a"), ("default", "b")}
    assert tracker.take() == set()


def test_partial_text_deletes_a_chain_only_after_its_references_go() -> None:
    cluster = Cluster(3)
    first = cluster.decide(None, {}, set())
    key = ("default", "s1")
    del cluster.services[key]
    text = cluster.decide(first.ruleset, first.fragments, {key}).text
    lines = text.splitlines()
    nat = lines[lines.index("*nat") :]
    first_delete = min(i for i, line in enumerate(nat) if line.startswith("-X "))
    assert all(not line.startswith(("-D ", "-A ", "-I ")) for line in nat[first_delete:])
    assert partial_text(first.ruleset, first.ruleset) == ""
