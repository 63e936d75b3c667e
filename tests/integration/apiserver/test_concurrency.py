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


async def test_concurrent_patches_all_land(apiserver: Any, namespace: str) -> None:
    """Patches name no resourceVersion: a lost race is retried, never a 409, nothing lost."""
    url = f"/api/v1/namespaces/{namespace}/configmaps/patched"
    async with apiserver.async_client() as client:
        await client.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            json={"metadata": {"name": "patched"}, "data": {}},
        )

        async def patch(i: int) -> int:
            r = await client.patch(
                url,
                json={"data": {f"k{i}": str(i)}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            return r.status_code

        codes = await asyncio.gather(*(patch(i) for i in range(40)))
        final = (await client.get(url)).json()
    assert codes == [200] * 40
    assert final["data"] == {f"k{i}": str(i) for i in range(40)}
