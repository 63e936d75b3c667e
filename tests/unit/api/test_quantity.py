"""Resource quantities are exact."""

from __future__ import annotations

from fractions import Fraction

import pytest

from api import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("0.1", Fraction(1, 10)),
        ("100m", Fraction(1, 10)),
        ("1", 1),
        ("128Mi", 128 * 2**20),
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("1e3", 1000),
        ("1.5", Fraction(3, 2)),
        (2, 2),
    ],
)
def test_parse(text: str, value: Fraction) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Xi", "--1", "1.2.3"])
def test_bad_quantities(text: str) -> None:
    assert not quantity.is_valid(text)


def test_rounding_up_like_kubernetes() -> None:
    assert quantity.milli_value("0.0001") == 1
    assert quantity.value("1.2") == 2
    assert quantity.format_bytes(64 * 2**20) == "64Mi"
    assert quantity.format_cpu(1500) == "1500m"
