"""The pure parts of skiff's life cycle: restart back-off, node name and address checks,
the systemd unit."""

from __future__ import annotations

import sys

import pytest

from cli.node_identity import check_flags, decide_conflicts
from cli.service import unit_text
from cli.supervisor import restart_delay


@pytest.mark.parametrize(
    ("previous", "up_for", "delay"),
    [
        (None, 0.5, 1.0),  # first exit: 1 s
        (1.0, 2.0, 2.0),  # keeps dying: doubles
        (16.0, 2.0, 30.0),  # ... to at most 30 s
        (30.0, 2.0, 30.0),
        (30.0, 59.0, 30.0),
        (30.0, 60.0, 1.0),  # stayed up for 60 s: starts over
    ],
)
def test_restart_delay(previous: float | None, up_for: float, delay: float) -> None:
    assert restart_delay(previous, up_for) == delay


def node(name: str, ip: str, machine: str) -> dict:
    return {
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "nodeInfo": {"machineID": machine},
        },
    }


def test_a_name_held_by_another_machine_is_refused_with_how_to_pick_another() -> None:
    why = decide_conflicts(
        [node("vm", "192.168.56.11", "aaaa")], node_name="vm", node_ip="192.168.56.12",
        machine="bbbb",
    )  # fmt: skip
    assert "node name 'vm' is already held by another machine" in why
    assert "--node-name" in why


def test_the_vagrant_nat_address_of_another_node_is_refused() -> None:
    why = decide_conflicts(
        [node("vm1", "10.0.2.15", "aaaa")], node_name="vm2", node_ip="10.0.2.15", machine="bbbb"
    )
    assert "address 10.0.2.15 is already the InternalIP of node 'vm1'" in why
    assert "--node-ip" in why


def test_our_own_node_from_before_is_no_conflict() -> None:
    nodes = [node("vm1", "10.0.2.15", "aaaa"), node("vm2", "192.168.56.12", "bbbb")]
    assert decide_conflicts(nodes, node_name="vm1", node_ip="10.0.2.15", machine="aaaa") == ""


@pytest.mark.parametrize(
    ("name", "ip", "fragment"),
    [
        ("Node_1", "127.0.0.1", "is not a valid DNS subdomain"),
        ("node-1", "10.0.0.300", "is not an IP address"),
        ("node-1", "192.168.56.99", "is not an address of this machine"),
        ("node-1", "127.0.0.1", ""),
    ],
)
def test_flags_are_checked(name: str, ip: str, fragment: str) -> None:
    why = check_flags(name, ip, {"127.0.0.1", "192.168.56.12"})
    assert (fragment in why) if fragment else why == ""


def test_the_unit_runs_up_in_the_foreground_and_leaves_pods_to_skiff_down() -> None:
    text = unit_text(["--state-dir", "/var/lib/skiff", "--node-ip", "192.168.56.11"])
    assert f"ExecStart={sys.executable} -m cli up --foreground --state-dir /var/lib/skiff " \
        "--node-ip 192.168.56.11\n" in text  # fmt: skip
    assert "KillMode=process" in text
    assert "WantedBy=multi-user.target" in text
