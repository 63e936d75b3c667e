"""A watch cache's keys in etcd's order, kept sorted as they come and go.

A list from the cache walks its keys in the order etcd would return them
(byte order), and a namespaced list wants only the keys under its prefix. One
sorted list does both: an add or delete moves its tail along (a memmove, cheap
next to a sort), and the keys under a prefix are one contiguous slice found by
two binary searches, so listing 1,000 pods of one namespace does not walk the
10,000 pods of all of them, as kube-apiserver's watch cache indexes by namespace.
"""

from __future__ import annotations

from bisect import bisect_left

from .storage import prefix_end


def _order(key: str) -> bytes:
    return key.encode()


class SortedKeys:
    def __init__(self, keys: object = ()) -> None:
        self._keys: list[str] = sorted(keys, key=_order)  # type: ignore[call-overload]

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        """Insert `key` unless it is there already."""
        at = bisect_left(self._keys, _order(key), key=_order)
        if at == len(self._keys) or self._keys[at] != key:
            self._keys.insert(at, key)

    def discard(self, key: str) -> None:
        at = bisect_left(self._keys, _order(key), key=_order)
        if at < len(self._keys) and self._keys[at] == key:
            del self._keys[at]

    def all(self) -> list[str]:
        """Every key, in order (the list itself: callers must not change it)."""
        return self._keys

    def under(self, prefix: str) -> list[str]:
        """The keys that start with `prefix`, in order."""
        raw = prefix.encode()
        lo = bisect_left(self._keys, raw, key=_order)
        hi = bisect_left(self._keys, prefix_end(raw), lo=lo, key=_order)
        return self._keys[lo:hi]
