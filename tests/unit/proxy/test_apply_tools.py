"""Which iptables commands the proxy runs for each backend."""

from __future__ import annotations

import pytest

from proxy.apply import Iptables


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
