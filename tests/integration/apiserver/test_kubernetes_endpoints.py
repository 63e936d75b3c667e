"""The `kubernetes` Endpoints list every live apiserver (endpoint_reconciler.py).

Two apiservers on one etcd (the first one's embedded etcd; the second given it
with --etcd-servers), on one secure port as in a real cluster but different
loopback addresses, 127.0.0.1 and 127.0.0.2, each advertising its own. Both
are listed; one stopped gracefully leaves the Endpoints at once (it revokes
its lease on the way out); one SIGKILLed leaves them when its lease runs out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apiserver import endpoint_reconciler as er
from tests.conftest import ApiServerProcess


class BoundApiServer(ApiServerProcess):
    """An apiserver bound to and advertising one loopback address of its own."""

    def __init__(self, state_dir: Path, address: str, *extra: str, port: int) -> None:
        flags = ["--bind-address", address, "--advertise-address", address]
        super().__init__(state_dir, *extra, *flags, port=port)
        self.address = address

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[BoundApiServer, BoundApiServer]]:
    first = BoundApiServer(tmp_path / "a", "127.0.0.1", port=0)
    first.start()
    pki = first.state_dir / "pki"
    second = BoundApiServer(
        tmp_path / "b",
        "127.0.0.2",
        "--etcd-servers", first.etcd_url,
        "--etcd-cafile", str(pki / "etcd" / "ca.crt"),
        "--etcd-certfile", str(pki / "apiserver-etcd-client.crt"),
        "--etcd-keyfile", str(pki / "apiserver-etcd-client.key"),
        port=first.port,
    )  # fmt: skip
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def listed(server: ApiServerProcess) -> tuple[list[str], list[str], list[int]]:
    """(Endpoints addresses, EndpointSlice addresses, Endpoints ports) as `server` serves them."""
    with server.client() as api:
        ep = api.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
        es = api.get(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"
        ).json()
    subsets = ep.get("subsets") or []
    ips = [a["ip"] for s in subsets for a in s.get("addresses", [])]
    ports = [p["port"] for s in subsets for p in s.get("ports", [])]
    slice_ips = [a for e in es.get("endpoints") or [] for a in e["addresses"]]
    return ips, slice_ips, ports


def wait_listed(server: ApiServerProcess, want: list[str], within: float) -> list[str]:
    """Poll until both objects list exactly `want`; the last Endpoints addresses seen."""
    deadline = time.monotonic() + within
    while True:
        ips, slice_ips, _ = listed(server)
        if ips == want and slice_ips == want:
            return ips
        if time.monotonic() > deadline:
            return ips
        time.sleep(0.2)


def test_every_live_apiserver_is_listed_and_a_stopped_one_leaves(
    pair: tuple[BoundApiServer, BoundApiServer],
) -> None:
    first, second = pair
    both = ["127.0.0.1", "127.0.0.2"]
    assert wait_listed(first, both, within=er.INTERVAL) == both
    assert wait_listed(second, both, within=er.INTERVAL) == both
    assert listed(first)[2] == [first.port]  # the secure port, which both serve on

    # A graceful stop revokes the lease: gone well before the lease could have expired.
    second.stop()
    assert wait_listed(first, ["127.0.0.1"], within=er.LEASE_TTL / 3) == ["127.0.0.1"]

    # Back again: listed again.
    second.start()
    assert wait_listed(first, both, within=er.INTERVAL) == both

    # SIGKILL: no one revokes the lease; etcd expires it after LEASE_TTL and the
    # first apiserver, watching the leases, writes the Endpoints without it.
    assert second.proc is not None
    second.proc.kill()
    second.proc.wait()
    assert listed(first)[0] == both  # still there: only the lease's expiry removes it
    assert wait_listed(first, ["127.0.0.1"], within=er.LEASE_TTL + er.INTERVAL) == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("keys", "want"),
    [
        ([], []),
        (["/registry/masterleases/127.0.0.2", "/registry/masterleases/127.0.0.1"],
         ["127.0.0.1", "127.0.0.2"]),
        # sorted as addresses, not as strings; a key that is not an address is ignored
        (["/registry/masterleases/10.0.0.10", "/registry/masterleases/10.0.0.9",
          "/registry/masterleases/junk"], ["10.0.0.9", "10.0.0.10"]),
    ],
)  # fmt: skip
def test_live_addresses(keys: list[str], want: list[str]) -> None:
    assert er.live_addresses(keys) == want


def test_decide() -> None:
    want = er.desired_endpoints(["127.0.0.1"], 6443)
    assert er.decide(None, want, er.ENDPOINTS_FIELDS) == "create"
    assert er.decide(want, want, er.ENDPOINTS_FIELDS) == "keep"
    other = er.desired_endpoints(["127.0.0.1", "127.0.0.2"], 6443)
    assert er.decide(other, want, er.ENDPOINTS_FIELDS) == "update"
    assert er.desired_endpoints([], 6443)["subsets"] == []
