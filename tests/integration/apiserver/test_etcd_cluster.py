"""Three apiservers, each with its embedded etcd as one member of a three-member
cluster (kubeadm's stacked etcd), all on 127.0.0.1 with their own ports and
state dirs and one shared etcd CA: what one apiserver writes another reads, and
with one member killed the other two still have quorum and keep serving.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from apiserver import certs
from apiserver.etcd_process import free_port
from tests.conftest import ApiServerProcess, _alive


def _configmap(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"value": value}}  # fmt: skip


def _read_value(server: ApiServerProcess, name: str, deadline: float) -> str | None:
    """The ConfigMap's value as `server` serves it, polled until it appears."""
    with server.client() as api:
        while True:
            r = api.get(f"/api/v1/namespaces/default/configmaps/{name}")
            if r.status_code == 200:
                return str(r.json()["data"]["value"])
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[ApiServerProcess]]:
    names = ["m1", "m2", "m3"]
    peer = {n: free_port() for n in names}
    initial = ",".join(f"{n}=https://127.0.0.1:{peer[n]}" for n in names)
    # One etcd CA for all members, copied as kubeadm's --upload-certs (or an
    # operator with scp) copies pki/etcd/ca.{crt,key} before the first start.
    first = tmp_path / "m1" / "pki" / "etcd"
    first.mkdir(parents=True, mode=0o700)
    ca = certs.ensure_ca(first, common_name="etcd-ca")
    servers = []
    for n in names:
        etcd_dir = tmp_path / n / "pki" / "etcd"
        if n != "m1":
            etcd_dir.mkdir(parents=True, mode=0o700)
            shutil.copy2(ca.cert, etcd_dir / "ca.crt")
            shutil.copy2(ca.key, etcd_dir / "ca.key")
        flags = [
            "--etcd-name", n,
            "--etcd-initial-cluster", initial,
            "--etcd-initial-cluster-state", "new",
            "--etcd-client-port", str(free_port()),
        ]  # fmt: skip
        servers.append(ApiServerProcess(tmp_path / n, *flags))
    try:
        # A new cluster answers only once a quorum of members runs: start them together.
        with ThreadPoolExecutor(len(servers)) as pool:
            for f in [pool.submit(s.start, 45.0) for s in servers]:
                f.result()
        yield servers
    finally:
        for s in servers:
            s.stop()


def test_three_members_replicate_and_survive_one_killed(
    cluster: list[ApiServerProcess], tmp_path: Path
) -> None:
    one, two, three = cluster
    # Every member knows all three (etcdctl with the apiserver's etcd client cert).
    listed = one.etcdctl("member", "list")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split(", ")[2] for line in listed.stdout.splitlines()) == ["m1", "m2", "m3"]

    with one.client() as api:
        r = api.post("/api/v1/namespaces/default/configmaps", json=_configmap("before", "1"))
        assert r.status_code == 201, r.text
    assert _read_value(two, "before", time.monotonic() + 15) == "1"
    assert _read_value(three, "before", time.monotonic() + 15) == "1"

    # Kill member three outright: its apiserver, then its etcd, both by PID.
    assert three.proc is not None
    etcd_pid = int((three.state_dir / "etcd.pid").read_text())
    three.proc.send_signal(signal.SIGKILL)
    three.proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.kill(etcd_pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while _alive(etcd_pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(etcd_pid, os.WNOHANG)
        time.sleep(0.1)
    assert not _alive(etcd_pid)

    # Two of three still form a quorum: writes through one, reads through the other.
    deadline = time.monotonic() + 20
    with one.client() as api:
        while True:
            try:
                r = api.post("/api/v1/namespaces/default/configmaps", json=_configmap("after", "2"))
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code == 201:
                break
            assert time.monotonic() < deadline, r.text if r is not None else "no answer"
            time.sleep(0.2)
    assert _read_value(two, "after", time.monotonic() + 15) == "2"
    with two.client() as api:
        path = "/api/v1/namespaces/default/configmaps/before"
        stored = api.get(path).json()
        stored["data"]["value"] = "3"
        r = api.put(path, json=stored)
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 15
    while _read_value(one, "before", deadline) != "3":
        assert time.monotonic() < deadline, "the update through two never reached one"
        time.sleep(0.1)
    health = one.etcdctl("endpoint", "health")
    assert health.returncode == 0, health.stderr

    # Replace the dead member, as docs/multi-vm-lab.md says: remove it, add the new
    # one, start it with every member and `existing`, from the same etcd CA.
    listed = one.etcdctl("member", "list").stdout.splitlines()
    dead_id = next(line.split(", ")[0] for line in listed if line.split(", ")[2] == "m3")
    removed = one.etcdctl("member", "remove", dead_id)
    assert removed.returncode == 0, removed.stderr
    peers = [line.split(", ")[3] for line in listed if line.split(", ")[2] != "m3"]
    new_peer = f"https://127.0.0.1:{free_port()}"
    # etcd refuses a new voting member until the others have been connected for a
    # few seconds after the removal ("unhealthy cluster"): ask again until then.
    deadline = time.monotonic() + 30
    while (added := one.etcdctl("member", "add", "m4", f"--peer-urls={new_peer}")).returncode:
        assert time.monotonic() < deadline, added.stderr
        time.sleep(0.5)
    etcd_dir = tmp_path / "m4" / "pki" / "etcd"
    etcd_dir.mkdir(parents=True, mode=0o700)
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(one.state_dir / "pki" / "etcd" / name, etcd_dir / name)
    members = f"m1={peers[0]},m2={peers[1]},m4={new_peer}"
    four = ApiServerProcess(
        tmp_path / "m4",
        "--etcd-name", "m4",
        "--etcd-initial-cluster", members,
        "--etcd-initial-cluster-state", "existing",
        "--etcd-client-port", str(free_port()),
    )  # fmt: skip
    cluster.append(four)  # stopped by the fixture too
    four.start(45.0)
    assert _read_value(four, "before", time.monotonic() + 15) == "3"
    assert _read_value(four, "after", time.monotonic() + 15) == "2"
    started = [line.split(", ")[1:3] for line in four.etcdctl("member", "list").stdout.splitlines()]
    assert sorted(started) == [["started", "m1"], ["started", "m2"], ["started", "m4"]]
