"""The image's busybox: wget's `-T` format changed from int to string in place, and
nothing else (the same length, the complementary rules intact), or not at all."""

from __future__ import annotations

import pytest

from runtime.images.busybox import without_wget_timeout_crash

FORMAT = b"^cqSO:o:P:Y:U:T:+t:n::\x00-1:\xfe--\xfb:\xff::\x00"
FIXED = b"^cqSO:o:P:Y:U:T:t:n::\x00-1:\xfe--\xfb:\xff::\x00\x00"


@pytest.mark.parametrize(
    ("binary", "expected"),
    [
        (b"head\x00" + FORMAT + b"tail", b"head\x00" + FIXED + b"tail"),
        (b"head\x00" + FIXED + b"tail", b"head\x00" + FIXED + b"tail"),  # already fixed
        (FORMAT + FORMAT, FORMAT + FORMAT),  # ambiguous: left alone
        (b"no wget here", b"no wget here"),
    ],
)
def test_only_the_timeout_option_changes(binary: bytes, expected: bytes) -> None:
    out = without_wget_timeout_crash(binary)
    assert out == expected
    assert len(out) == len(binary)
