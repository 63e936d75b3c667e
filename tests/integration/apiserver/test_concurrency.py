"""Optimistic concurrency under contention: no update is lost."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_eight_writers_increment_to_exactly_800(apiserver: Any, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps/counter"
    conflicts = 0
    async with apiserver.async_client() as client:
        r = await client.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            json={"metadata": {"name": "counter"}, "data": {"n": "0"}},
        )
        assert r.status_code == 201, r.text

        async def increment_100_times() -> None:
            nonlocal conflicts
            for _ in range(100):
                while True:
                    current = (await client.get(url)).json()
                    current["data"]["n"] = str(int(current["data"]["n"]) + 1)
                    put = await client.put(url, json=current)
                    if put.status_code == 200:
                        break
                    assert put.status_code == 409, put.text
                    conflicts += 1

        await asyncio.gather(*(increment_100_times() for _ in range(8)))
        final = (await client.get(url)).json()
    assert final["data"]["n"] == "800"
    # The contention was real: some writers lost races and retried.
    assert conflicts > 0
