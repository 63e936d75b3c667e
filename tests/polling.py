"""Polling for a condition, the one way the integration tests wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(
    check: Callable[[], Any], timeout: float = 60.0, what: str = "", interval: float = 0.2
) -> Any:
    """Poll until `check()` is truthy and return it; fail with the last value seen.
    The bound is generous (behaviour, not speed: speed is for bench/)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")
