"""JSON in and out of the apiserver: orjson where its output is what `json` gives.

Every object the API answers with, and every value written to etcd, is
encoded here, so the codec's cost is paid on every request. orjson writes
compact JSON in the dict's own key order (Kubernetes' field order, as the
objects were built), UTF-8 unescaped as Go writes it, about ten times faster
than `json`. Where orjson refuses a value — an integer past 64 bits, a lone
UTF-16 surrogate (input refuses them; this guards what is already stored) — the
standard library writes it exactly as before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (no spaces), keys in insertion order, UTF-8."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError: a huge integer, a surrogate
        pass
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    """JSON text to Python; what orjson refuses, `json` reads (or raises its own error)."""
    try:
        return orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError: let json decide, with its own message
        return json.loads(data)
