"""The watch cache's reads and watches again, with every hub packed from its first object.

A hub keeps its objects' JSON compressed once it has held `PACK_FROM` (2,000)
objects, which no other test reaches: this module runs the cache-read and
watch-resume tests of test_cache_reads.py against an apiserver told by its
environment to pack from the first object, so that the packed path (cached
gets and lists, selectors, paging, history replayed to a watch) answers what
the unpacked one does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ApiServerProcess
from tests.integration.apiserver.test_cache_reads import (  # noqa: F401 (collected here too)
    test_a_list_resource_version_starts_a_watch_that_misses_nothing,
    test_a_read_right_after_a_write_sees_it,
    test_a_watch_with_a_selector_sees_an_object_leave_and_return,
    test_field_selectors_on_cached_reads,
    test_paging_from_the_cache,
    test_resource_version_zero_reads_the_cache,
    test_selectors_on_cached_reads,
)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    """An apiserver whose hubs pack from their first object (its workers inherit this)."""
    server = ApiServerProcess(Path(tmp_path_factory.mktemp("packed")))
    before = os.environ.get("SKIFF_WATCH_PACK_FROM")
    os.environ["SKIFF_WATCH_PACK_FROM"] = "1"
    try:
        server.start()
    finally:
        if before is None:
            del os.environ["SKIFF_WATCH_PACK_FROM"]
        else:
            os.environ["SKIFF_WATCH_PACK_FROM"] = before
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(apiserver: ApiServerProcess) -> Iterator[httpx.Client]:
    with apiserver.client() as client:
        yield client


def test_the_hubs_are_packed(apiserver: ApiServerProcess, api: httpx.Client) -> None:
    """The premise of this module: the apiserver was told to pack (its metrics or log
    cannot show it, so the environment it was started with is checked)."""
    assert apiserver.proc is not None
    environ = Path(f"/proc/{apiserver.proc.pid}/environ").read_bytes().split(b"\0")
    assert b"SKIFF_WATCH_PACK_FROM=1" in environ
    assert api.get("/readyz").status_code == 200
