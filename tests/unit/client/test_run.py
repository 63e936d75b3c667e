"""A component's main work stops on SIGTERM, cancelled, and a failure is not swallowed."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from client.run import run_until_signalled


def test_sigterm_cancels_the_work() -> None:
    seen: list[str] = []

    async def work() -> None:
        seen.append("started")
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill <pid>` would
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    asyncio.run(run_until_signalled(work))
    assert seen == ["started", "cancelled"]
    # The handlers are gone again: SIGTERM is back to its default disposition.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_work_that_fails_raises() -> None:
    async def work() -> None:
        raise RuntimeError("cannot reach the apiserver")

    with pytest.raises(RuntimeError, match="cannot reach"):
        asyncio.run(run_until_signalled(work))
