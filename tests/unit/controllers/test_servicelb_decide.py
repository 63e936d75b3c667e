"""ServiceLB: which ingress addresses a LoadBalancer Service gets (k3s's ServiceLB rules)."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.servicelb import decide


def node(
    name: str, *addresses: tuple[str, str], ready: str = "True", cordoned: bool = False
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"unschedulable": cordoned},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "addresses": [{"type": t, "address": a} for t, a in addresses],
        },
    }


def lb(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "LoadBalancer", **spec},
    }


NODES = [
    node("b", ("InternalIP", "192.168.1.12"), ("Hostname", "b")),
    node("a", ("InternalIP", "192.168.1.11"), ("ExternalIP", "203.0.113.5")),
    node("c", ("InternalIP", "192.168.1.13"), ready="Unknown"),
    node("d", ("InternalIP", "192.168.1.14"), cordoned=True),
    node("e", ("InternalIP", "fd00::1")),
]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        # Ready, schedulable nodes: ExternalIP when there is one, else InternalIP; sorted.
        (lb(), [{"ip": "192.168.1.12"}, {"ip": "203.0.113.5"}]),
        # Not a LoadBalancer (any more): no ingress.
        (lb(type="ClusterIP"), []),
        (lb(type="NodePort"), []),
        # Someone else's load balancer: not ours to touch.
        (lb(loadBalancerClass="example.com/lb"), None),
    ],
)
def test_ingress(service: dict[str, Any], expected: list | None) -> None:
    assert decide(service, NODES) == expected


def test_no_ready_node_means_no_ingress_yet() -> None:
    assert decide(lb(), [node("a", ("InternalIP", "10.0.0.1"), ready="False")]) == []
