"""The watch cache's key order: etcd's (byte order), and a namespace as one slice."""

from __future__ import annotations

import random

from apiserver.sorted_keys import SortedKeys


def test_keeps_etcd_byte_order_through_adds_and_deletes() -> None:
    keys = [f"/registry/pods/ns{n % 7}/p{n}" for n in range(300)] + ["/registry/pods/é/x"]
    random.Random(4).shuffle(keys)
    index = SortedKeys(keys[:100])
    for key in keys[100:]:
        index.add(key)
    index.add(keys[0])  # already there: not twice
    for key in keys[::3]:
        index.discard(key)
    index.discard("/registry/pods/nowhere/x")  # absent: nothing happens
    left = sorted(set(keys) - set(keys[::3]), key=str.encode)
    assert index.all() == left
    assert len(index) == len(left)


def test_a_namespace_is_its_prefix_and_nothing_beside_it() -> None:
    index = SortedKeys(
        ["/registry/pods/a/x", "/registry/pods/ab/y", "/registry/pods/a/z", "/registry/pods/b/w"]
    )
    assert index.under("/registry/pods/a/") == ["/registry/pods/a/x", "/registry/pods/a/z"]
    assert index.under("/registry/pods/ab/") == ["/registry/pods/ab/y"]
    assert index.under("/registry/pods/c/") == []
    assert len(index.under("/registry/pods/")) == 4
