"""Which iptables commands the proxy runs for each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.apply import Iptables, ensure_sysctls


@pytest.mark.parametrize(
    ("backend", "tools"),
    [
        ("", ("iptables", "iptables-save", "iptables-restore")),
        ("nft", ("iptables-nft", "iptables-nft-save", "iptables-nft-restore")),
        ("legacy", ("iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore")),
    ],
)
def test_tools_per_backend(backend: str, tools: tuple[str, str, str]) -> None:
    ipt = Iptables(backend=backend)
    assert (ipt.tool("iptables"), ipt.tool("save"), ipt.tool("restore")) == tools


def test_sysctls_services_need_are_set_once(tmp_path: Path) -> None:
    (tmp_path / "net/ipv4").mkdir(parents=True)
    (tmp_path / "net/ipv4/ip_forward").write_text("0\n")
    # No net/bridge: br_netfilter not loaded; skipped, not an error.
    assert ensure_sysctls(tmp_path) == ["net.ipv4.ip_forward=1"]
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "1"
    assert ensure_sysctls(tmp_path) == []
