"""When skiff defragments its embedded etcd (apiserver/etcd_maintenance.py)."""

from __future__ import annotations

import pytest

from apiserver.etcd_maintenance import should_defragment

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("db_size", "in_use", "defragment"),
    [
        (20 * MiB, 2 * MiB, False),  # mostly free, but too little to matter
        (200 * MiB, 150 * MiB, False),  # 50 MiB free: a quarter of the file
        (200 * MiB, 100 * MiB, True),  # half of it, and 100 MiB
        (2048 * MiB, 900 * MiB, True),
        (2048 * MiB, 1100 * MiB, False),
    ],
)
def test_defragment_once_half_the_file_and_64_mib_are_free(
    db_size: int, in_use: int, defragment: bool
) -> None:
    assert should_defragment(db_size, in_use) is defragment
