"""JSON in and out of the apiserver: orjson where its output is what `json` gives.

Every object the API answers with, and every value written to etcd, is
encoded here, so the codec's cost is paid on every request. orjson writes
compact JSON in the dict's own key order (Kubernetes' field order, as the
objects were built), UTF-8 unescaped as Go writes it, about ten times faster
than `json`. Where orjson refuses a value — an integer past 64 bits, a lone
UTF-16 surrogate (input refuses them; this guards what is already stored) — the
standard library writes it exactly as before; text that may hold an integer past
64 bits, which orjson would read as a float, is read by the standard library.
One difference remains, in spelling only: a float in exponent form is written
`1e-7` where `json` (and Go) write `1e-07`; every JSON reader reads the same number.
"""

from __future__ import annotations

import json
import re
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


# orjson reads an integer past 64 bits as a float (10**30 becomes 1e+30); `json`
# keeps it an int. Any run of 19 digits (in a number or a string) sends the text
# to `json`: rarely, and never wrong.
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


def loads(data: bytes | str) -> Any:
    """JSON text to Python; what orjson refuses or might read differently, `json`
    reads (or refuses with its own error)."""
    digits = _LONG_DIGITS_BYTES if isinstance(data, bytes) else _LONG_DIGITS
    if digits.search(data):  # type: ignore[arg-type]
        return json.loads(data)
    try:
        return orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError: let json decide, with its own message
        return json.loads(data)
