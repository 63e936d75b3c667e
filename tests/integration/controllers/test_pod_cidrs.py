"""Node IPAM under load: many Nodes registering at once each get a CIDR of their own.

Before the allocated set was kept in memory, two Nodes reconciled before the
watch delivered the first one's podCIDR got the same CIDR (and their pods the
same addresses). A restarted controller-manager must rebuild the set from the
Nodes, not hand out a CIDR a Node already has. Against a real apiserver the
race shows only when the watch falls behind (a loaded machine);
tests/unit/controllers/test_pod_cidr_race.py makes it happen every time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import FAST_ELECTION, ApiServerProcess, ComponentProcess
from tests.polling import eventually

NODES = 40


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[tuple[ApiServerProcess, ComponentProcess]]:
    """An apiserver and controller-manager of this test's own (the Nodes would
    disturb other tests' node counts in the shared control plane)."""
    server = ApiServerProcess(tmp_path)
    manager = ComponentProcess(
        "controllers", tmp_path / "admin.kubeconfig", tmp_path / "cm.log", *FAST_ELECTION
    )
    try:
        server.start()
        manager.start()
        yield server, manager
    finally:
        manager.stop()
        server.stop()


def cidrs(api: httpx.Client, names: list[str]) -> dict[str, str]:
    items = api.get("/api/v1/nodes").json()["items"]
    got = {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR") for n in items}
    return {name: got[name] for name in names if got.get(name)}


def register(server: ApiServerProcess, names: list[str]) -> None:
    def create(name: str) -> int:
        with server.client() as api:
            return api.post("/api/v1/nodes", json=node(name)).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(create, names)) == {201}


def test_many_nodes_at_once_get_distinct_cidrs_also_after_a_restart(
    cluster: tuple[ApiServerProcess, ComponentProcess],
) -> None:
    server, manager = cluster
    first = [f"n-{uuid.uuid4().hex[:6]}-{i}" for i in range(NODES)]
    register(server, first)
    with server.client() as api:
        got = eventually(lambda: len(c := cidrs(api, first)) == NODES and c, what="all pod CIDRs")
    assert len(set(got.values())) == NODES, got

    # A new controller-manager knows only what the Nodes say.
    manager.stop()
    manager.start()
    second = [f"m-{uuid.uuid4().hex[:6]}-{i}" for i in range(10)]
    register(server, second)
    with server.client() as api:
        more = eventually(lambda: len(c := cidrs(api, second)) == 10 and c, what="the new CIDRs")
        everything = cidrs(api, first + second)
    assert len(set(everything.values())) == NODES + 10, everything
    assert not set(more.values()) & set(got.values())
