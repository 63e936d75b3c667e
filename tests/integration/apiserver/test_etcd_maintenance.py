"""etcd upkeep against a real etcd: NOSPACE is reported as such, a mostly free file
is defragmented (apiserver/etcd_maintenance.py)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aetcd
import pytest
from aetcd import rpc

from apiserver import etcd_maintenance
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(not shutil.which("etcd"), reason="needs etcd")


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[int]:
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    with open(tmp_path / "etcd.log", "wb") as log:
        proc = subprocess.Popen(
            ["etcd", "--name", "m", "--data-dir", str(tmp_path / "data"),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"m=http://127.0.0.1:{peer}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield client
    finally:
        proc.terminate()
        proc.wait(15)


async def connected(port: int) -> aetcd.Client:
    client = aetcd.Client(host="127.0.0.1", port=port, timeout=10)
    for _ in range(100):
        try:
            await client.connect()
            await client.status()
            return client
        except Exception:
            await asyncio.sleep(0.1)
    raise AssertionError("etcd did not start")


async def test_nospace_is_reported_with_what_to_do(
    etcd: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = await connected(etcd)
    try:
        assert await etcd_maintenance.maintain(client, defragment=False) == []
        await client.create_alarm()  # the alarm etcd raises itself at the quota
        with caplog.at_level(logging.ERROR, logger="skiff.apiserver.etcd"):
            assert await etcd_maintenance.maintain(client, defragment=False) == ["NOSPACE"]
        assert "etcd raised NOSPACE" in caplog.text and "etcdctl alarm disarm" in caplog.text
    finally:
        await client.disarm_alarm()
        await client.close()


async def test_a_mostly_free_file_is_defragmented(
    etcd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(etcd_maintenance, "MIN_FREE", 1024 * 1024)
    client = await connected(etcd)
    try:
        for i in range(200):
            await client.put(f"/k/{i}".encode(), b"x" * 32 * 1024)
        await client.delete_prefix(b"/k/")
        status = await client.maintenancestub.Status(rpc.StatusRequest(), timeout=10)
        await client.compact(status.header.revision, physical=True)
        for _ in range(100):  # bbolt releases freed pages when a later write begins
            await client.put(b"/tick", b"")
            await asyncio.sleep(0.1)
            before = await client.maintenancestub.Status(rpc.StatusRequest(), timeout=10)
            if etcd_maintenance.should_defragment(before.dbSize, before.dbSizeInUse):
                break
        assert etcd_maintenance.should_defragment(before.dbSize, before.dbSizeInUse), before
        await etcd_maintenance.maintain(client, defragment=True)
        after = await client.maintenancestub.Status(rpc.StatusRequest(), timeout=10)
        assert after.dbSize < before.dbSize / 2
    finally:
        await client.close()
