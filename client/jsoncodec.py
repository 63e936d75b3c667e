"""JSON on the client's wire: orjson where it reads and writes what `json` does.

Every object a component receives (each watch event, each response) and every
body it sends goes through here, so the codec is paid per pod and per event:
orjson decodes a pod's watch event about three times faster than `json` and
encodes about ten times faster. Where orjson might differ the standard library
does the work: text holding an integer past 64 bits (which orjson reads as a
float) is read by `json`, and a value orjson refuses to write (an integer past
64 bits, a lone surrogate, a non-string key) is written by `json`. The same
rules as the apiserver's codec (apiserver/jsoncodec.py); components may not
import the apiserver, so the few lines are here too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Any run of 19 digits (in a number or a string) sends the text to `json`: rarely,
# and never wrong.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, keys in insertion order, UTF-8."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError: a huge integer, a surrogate, an int key
        return json.dumps(obj, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """JSON bytes to Python, as `json.loads` reads them (or refuses them: ValueError)."""
    if _LONG_DIGITS.search(data):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError: let json decide, with its own message
        return json.loads(data)
