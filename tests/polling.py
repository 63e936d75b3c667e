"""Polling for a condition, the one way the integration tests wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(
    check: Callable[[], Any],
    timeout: float = 60.0,
    what: str | Callable[[], str] = "",
    interval: float = 0.2,
    *,
    ignoring: tuple[type[Exception], ...] = (),
) -> Any:
    """Poll until `check()` is truthy and return it; fail with the last value seen.
    The bound is generous (behaviour, not speed: speed is for bench/).

    `ignoring`: exceptions that mean "not yet" (a server still starting, an object
    not there yet); the last one is the value shown if time runs out. `what` may be
    a function, called only then: a description with a log's tail, say."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ignoring as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    described = what() if callable(what) else what
    raise AssertionError(f"timed out waiting for {described or check}: last={last!r}")
