"""Work queue semantics: dedupe, one worker per key, backoff."""

from __future__ import annotations

import asyncio

from client.workqueue import WorkQueue


async def test_duplicates_collapse() -> None:
    q = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_key_is_never_handed_out_twice_at_once() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed while a worker holds it
    assert len(q) == 0  # not handed to a second worker
    q.done(key)
    assert len(q) == 1  # handed out again afterwards
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_backoff_doubles_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.005, max_delay=1.0)
    delays = []
    for _ in range(10):
        delays.append(q.backoff("k"))
        q.add_rate_limited("k")
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[-1] == 1.0  # capped
    q.forget("k")
    assert q.backoff("k") == 0.005
    await q.shutdown()


async def test_add_after_delivers_later() -> None:
    q = WorkQueue()
    q.add_after("later", 0.05)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 2) == "later"
