"""The node IPAM's allocated set (controllers/cidrset.py)."""

from __future__ import annotations

from controllers.cidrset import CIDRSet


def test_each_node_gets_its_own_cidr_and_keeps_it() -> None:
    cidrs = CIDRSet("10.244.0.0/16", 24)
    a, b = cidrs.allocate("a"), cidrs.allocate("b")
    assert (a, b) == ("10.244.0.0/24", "10.244.1.0/24")
    # Asked again before the informer saw the write: the same CIDR, not a new one.
    assert cidrs.allocate("a") == a


def test_rebuilt_set_skips_cidrs_nodes_already_have() -> None:
    cidrs = CIDRSet("10.244.0.0/16", 24)
    cidrs.occupy("old-1", "10.244.0.0/24")
    cidrs.occupy("old-2", "10.244.2.0/24")
    assert cidrs.allocate("new-1") == "10.244.1.0/24"
    assert cidrs.allocate("new-2") == "10.244.3.0/24"


def test_released_cidr_is_reused_and_exhaustion_is_none() -> None:
    cidrs = CIDRSet("10.0.0.0/23", 24)
    assert cidrs.allocate("a") == "10.0.0.0/24"
    assert cidrs.allocate("b") == "10.0.1.0/24"
    assert cidrs.allocate("c") is None
    assert cidrs.release("a") == "10.0.0.0/24"
    assert cidrs.allocate("c") == "10.0.0.0/24"
    assert cidrs.release("nobody") is None
