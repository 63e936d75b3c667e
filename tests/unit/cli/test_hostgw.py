"""host-gw routes: which other nodes get a route, and what changes."""

from __future__ import annotations

from typing import Any

import pytest

from cli.hostgw import decide, desired_routes


def node(name: str, cidr: str = "", ip: str = "") -> dict[str, Any]:
    addresses = [{"type": "InternalIP", "address": ip}] if ip else []
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr} if cidr else {},
        "status": {"addresses": [{"type": "Hostname", "address": name}, *addresses]},
    }


def test_every_other_node_with_cidr_and_address() -> None:
    nodes = [
        node("lab-1", "10.244.0.0/24", "172.30.0.11"),
        node("lab-2", "10.244.1.0/24", "172.30.0.12"),
        node("lab-3", "", "172.30.0.13"),  # no CIDR yet
        node("lab-4", "10.244.3.0/24"),  # no address yet
        node("lab-5", "not-a-cidr", "172.30.0.15"),
    ]
    assert desired_routes(nodes, "lab-1") == {"10.244.1.0/24": "172.30.0.12"}


LOCAL = ["172.30.0.11/24"]


@pytest.mark.parametrize(
    ("desired", "current", "change", "remove"),
    [
        ({"10.244.1.0/24": "172.30.0.12"}, {}, {"10.244.1.0/24": "172.30.0.12"}, []),
        ({"10.244.1.0/24": "172.30.0.12"}, {"10.244.1.0/24": "172.30.0.12"}, {}, []),
        # a node came back with another address
        (
            {"10.244.1.0/24": "172.30.0.19"},
            {"10.244.1.0/24": "172.30.0.12"},
            {"10.244.1.0/24": "172.30.0.19"},
            [],
        ),
        # a node went: its route goes
        ({}, {"10.244.1.0/24": "172.30.0.12"}, {}, ["10.244.1.0/24"]),
        # a gateway on no attached subnet (a simulated node) gets no route
        ({"10.244.9.0/24": "172.31.0.9"}, {}, {}, []),
    ],
)
def test_decide(desired: dict, current: dict, change: dict, remove: list) -> None:
    assert decide(desired, current, LOCAL) == (change, remove)
