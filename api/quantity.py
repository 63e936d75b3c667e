"""Kubernetes resource quantities: "500m", "1.5", "128Mi", "1G", "1e3".

Exact arithmetic with Fraction, because "0.1" CPU must compare equal to
"100m" and a memory limit of "1Gi" is exactly 1073741824 bytes.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_PATTERN = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)


def parse(text: str | int | float) -> Fraction:
    """The exact value of a quantity; ValueError with Kubernetes' message when malformed."""
    if isinstance(text, str):
        return _parse_text(text)
    return _parse(text)


@lru_cache(maxsize=8192)
def _parse_text(text: str) -> Fraction:
    """Memoized: a cluster has few distinct quantities, and schedulers parse them often."""
    return _parse(text)


def _parse(text: str | int | float) -> Fraction:
    if isinstance(text, bool):
        raise ValueError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    if isinstance(text, int | float):
        return Fraction(str(text))
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * Fraction(10) ** int(suffix[1:])


def is_valid(text: object) -> bool:
    try:
        parse(text)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def value(text: str | int | float) -> int:
    """The value rounded up to an integer, as Quantity.Value() does (bytes, cores)."""
    return math.ceil(parse(text))


def milli_value(text: str | int | float) -> int:
    """Thousandths, rounded up, as Quantity.MilliValue() does (millicores)."""
    return math.ceil(parse(text) * 1000)


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_bytes(n: int) -> str:
    for suffix, size in reversed(list(_BINARY.items())):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)
