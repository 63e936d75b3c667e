"""Sharing the strings of many cached objects.

Caches of thousands of objects (the apiserver's watch caches, every component's
informers) hold the same keys and names over and over: `metadata`, `labels`,
a namespace, a node name. Interning them keeps one copy of each.
"""

from __future__ import annotations

import sys
from typing import Any

SHORT = 64  # strings up to this long are interned: names, enums, paths, not blobs


def interned(value: Any) -> Any:
    """`value` (decoded JSON) with its keys and short strings shared with every other
    value interned: equal to it otherwise."""
    if isinstance(value, dict):
        return {sys.intern(k): interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interned(v) for v in value]
    if isinstance(value, str) and len(value) <= SHORT:
        return sys.intern(value)
    return value
