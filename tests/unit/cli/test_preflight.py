"""Preflight decisions from machine facts (cli/preflight.py): one line per failure, with its fix."""

from __future__ import annotations

import dataclasses

import pytest

from cli.preflight import BRIDGE_NF, FORWARD, Facts, decide, failed

PORTS = (6443, 10250)
GOOD = Facts(
    euid=0,
    modules=frozenset({"overlay", "br_netfilter"}),
    sysctls={FORWARD: "1", BRIDGE_NF: "1"},
    cgroup_mount="cgroup2",
    cgroup_controllers=frozenset({"cpu", "memory", "pids", "cpuset"}),
    iptables="iptables v1.8.9 (nf_tables)",
)


def lines(facts: Facts) -> dict[str, str]:
    return {f.check: f.line() for f in decide(facts, PORTS)}


def test_a_good_machine_passes_and_says_what_it_found() -> None:
    findings = decide(GOOD, PORTS)
    assert failed(findings) == []
    got = lines(GOOD)
    assert got["cgroups"] == "[ok]    cgroups: v2 with cpu, memory and pids"
    assert got["iptables"] == "[ok]    iptables: v1.8.9 (nf_tables)"


@pytest.mark.parametrize(
    ("change", "check", "line", "fixable"),
    [
        ({"euid": 1000}, "root", "[fail]  root: skiff up needs root (run it with sudo, or as root)",
         False),
        ({"modules": frozenset({"br_netfilter"})}, "module overlay",
         "[fail]  module overlay: not loaded (needed for container root filesystems) "
         "(modprobe overlay)", True),
        ({"sysctls": {FORWARD: "0", BRIDGE_NF: "1"}}, FORWARD,
         f"[fail]  {FORWARD}: 0: pod traffic would not be routed (sysctl -w {FORWARD}=1)", True),
        ({"sysctls": {FORWARD: "1", BRIDGE_NF: ""}}, BRIDGE_NF,
         f"[fail]  {BRIDGE_NF}: missing (br_netfilter not loaded): Service rules would miss "
         f"traffic between pods on this node (modprobe br_netfilter; sysctl -w {BRIDGE_NF}=1)",
         True),
        ({"cgroup_mount": "", "cgroup_controllers": frozenset()}, "cgroups",
         "[fail]  cgroups: no cgroup file system on /sys/fs/cgroup (mount cgroup2 on "
         "/sys/fs/cgroup (systemd does at boot))", False),
        ({"cgroup_controllers": frozenset({"cpu", "pids"})}, "cgroups",
         "[fail]  cgroups: v2, without the memory controller (enable it on the kernel command "
         "line (cgroup_enable=...))", False),
        ({"iptables": ""}, "iptables",
         "[fail]  iptables: not installed (apt-get install iptables)", False),
        ({"busy_ports": {6443: "kube-apiserver (pid 42)"}}, "port 6443",
         "[fail]  port 6443: in use by kube-apiserver (pid 42) (stop it (another Kubernetes?) "
         "before skiff up)", False),
    ],
)  # fmt: skip
def test_each_failure_is_one_line_with_its_fix(
    change: dict, check: str, line: str, fixable: bool
) -> None:
    facts = dataclasses.replace(GOOD, **change)
    findings = {f.check: f for f in decide(facts, PORTS)}
    assert findings[check].line() == line
    assert findings[check].fixable is fixable
    assert [f.check for f in failed(list(findings.values()))] == [check]


def test_hybrid_and_v1_layouts_are_named() -> None:
    hybrid = dataclasses.replace(
        GOOD, cgroup_mount="tmpfs", cgroup_controllers=frozenset({"cpu", "memory", "pids",
                                                                   "unified"})
    )  # fmt: skip
    v1 = dataclasses.replace(GOOD, cgroup_mount="tmpfs")
    assert lines(hybrid)["cgroups"].endswith("hybrid with cpu, memory and pids")
    assert lines(v1)["cgroups"].endswith("v1 with cpu, memory and pids")


def test_swap_is_a_warning_that_does_not_stop_up() -> None:
    facts = dataclasses.replace(GOOD, swap_bytes=2 * 2**30)
    findings = decide(facts, PORTS)
    swap = next(f for f in findings if f.check == "swap")
    assert swap.line() == (
        "[warn]  swap: 2048 MiB of swap is on: memory limits count RAM only "
        "(swapoff -a, and remove it from /etc/fstab)"
    )
    assert failed(findings) == []
