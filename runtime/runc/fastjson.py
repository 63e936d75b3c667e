"""JSON for skiff-runc through the standard library's own C codec, without `import json`.

`json` is the same C code behind a Python layer that imports `re` (and with it
`enum`, `functools` and `collections`): about 6 ms of a container start that
runc does in 18. `_json` is that C code alone; `json` itself calls it exactly
like this (json.scanner.c_make_scanner, json.encoder.c_make_encoder). Pretty
printing (`indent`) has no C path, so `state` output goes through `json`.
"""

from __future__ import annotations

import _json


class _Context:
    """What the C scanner reads from a JSONDecoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_scan = _json.make_scanner(_Context())
_WHITESPACE = " \t\n\r"


def _unserializable(o: object) -> object:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_encode = _json.make_encoder(
    None, _unserializable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
)


def loads(text: str) -> object:
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return value


def dumps(value: object) -> str:
    return "".join(_encode(value, 0))
