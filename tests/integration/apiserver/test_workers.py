"""The apiserver as several worker processes on one port (apiserver/workers.py).

Which worker takes a connection is the kernel's choice (one shared accept
queue), so to make a request go through a given worker the tests stop the
other one (SIGSTOP: it accepts nothing while stopped) for as long as it takes
to open a connection, which the client then keeps (keep-alive) for the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ApiServerProcess

WORKERS = 2
INCREMENTS = 15  # per client, four clients (two per worker)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):
                kids += [
                    int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return kids


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except FileNotFoundError:
        return []


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def worker_pids(server: ApiServerProcess) -> list[int]:
    assert server.proc is not None
    return sorted(
        p for p in _children(server.proc.pid) if "apiserver" in _cmdline(p) and _running(p)
    )


def wait_for_workers(server: ApiServerProcess, count: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        pids = worker_pids(server)
        if len(pids) == count:
            return pids
        assert time.monotonic() < deadline, f"workers {pids}, wanted {count}"
        time.sleep(0.1)


@contextlib.contextmanager
def only(pid: int, others: list[int]) -> Iterator[None]:
    """While inside, only worker `pid` accepts connections (the others are stopped)."""
    stopped = [p for p in others if p != pid]
    for p in stopped:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in stopped:
            os.kill(p, signal.SIGCONT)


@contextlib.contextmanager
def pinned(server: ApiServerProcess, pid: int, pids: list[int]) -> Iterator[httpx.Client]:
    """A client whose one kept-alive connection was accepted by worker `pid`."""
    with server.client(limits=httpx.Limits(max_connections=1)) as client:
        with only(pid, pids):
            assert client.get("/version").status_code == 200
        yield client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    server = ApiServerProcess(tmp_path_factory.mktemp("workers"), "--workers", str(WORKERS))
    try:
        server.start()
        wait_for_workers(server, WORKERS)
        yield server
    finally:
        server.stop()


@pytest.fixture
def ns(server: ApiServerProcess) -> str:
    name = f"w-{uuid.uuid4().hex[:8]}"
    with server.client() as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def test_watch_on_one_worker_sees_writes_through_the_other(
    server: ApiServerProcess, ns: str
) -> None:
    a, b = wait_for_workers(server, WORKERS)
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    with pinned(server, a, [a, b]) as writer, pinned(server, b, [a, b]) as watcher:
        rv = watcher.get(cms).json()["metadata"]["resourceVersion"]
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "15"}
        with watcher.stream("GET", cms, params=params) as r:
            assert r.status_code == 200
            names = [f"cm-{i}" for i in range(5)]
            for name in names:
                assert writer.post(cms, json={"metadata": {"name": name}}).status_code == 201
            seen: list[str] = []
            for line in r.iter_lines():
                if line:
                    event = json.loads(line)
                    assert event["type"] == "ADDED", event
                    seen.append(event["object"]["metadata"]["name"])
                if len(seen) == len(names):
                    break
        assert seen == names


def test_read_your_writes_across_workers(server: ApiServerProcess, ns: str) -> None:
    """A write through one worker is in the very next read through the other."""
    a, b = wait_for_workers(server, WORKERS)
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    with pinned(server, a, [a, b]) as writer, pinned(server, b, [a, b]) as reader:
        for i in range(20):
            created = writer.post(cms, json={"metadata": {"name": f"c{i}"}, "data": {"i": str(i)}})
            assert created.status_code == 201
            got = reader.get(f"{cms}/c{i}")
            assert got.status_code == 200, got.text
            assert got.json()["data"] == {"i": str(i)}
            listed = reader.get(cms).json()
            assert f"c{i}" in [o["metadata"]["name"] for o in listed["items"]]
            patched = writer.patch(
                f"{cms}/c{i}",
                json={"data": {"i": "x"}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert (
                reader.get(f"{cms}/c{i}").json()["metadata"]["resourceVersion"]
                == (patched.json()["metadata"]["resourceVersion"])
            )


def test_a_token_issued_by_one_worker_is_accepted_by_the_other(
    server: ApiServerProcess, ns: str
) -> None:
    """Every worker signs and checks service-account tokens with the one key."""
    a, b = wait_for_workers(server, WORKERS)
    with pinned(server, a, [a, b]) as via_a, pinned(server, b, [a, b]) as via_b:
        sa = f"/api/v1/namespaces/{ns}/serviceaccounts"
        assert via_a.post(sa, json={"metadata": {"name": "robot"}}).status_code == 201
        r = via_a.post(f"{sa}/robot/token", json={"spec": {}})
        assert r.status_code == 201, r.text
        token = r.json()["status"]["token"]
        pods = f"/api/v1/namespaces/{ns}/pods"
        deadline = time.monotonic() + 20
        while True:  # until the account is in the other worker's cache (milliseconds)
            code = via_b.get(pods, headers={"Authorization": f"Bearer {token}"}).status_code
            if code != 401 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert code == 403  # authenticated as the account, which may not list pods


def _counter(text: str, resource: str) -> float:
    pattern = re.compile(
        r'^apiserver_request_total\{(?=[^}]*code="200")(?=[^}]*resource="' + resource + r'")'
        r'(?=[^}]*verb="list")[^}]*\} (\S+)$',
        re.M,
    )
    return sum(float(m) for m in pattern.findall(text))


@contextlib.contextmanager
def held(pid: int) -> Iterator[None]:
    """Worker `pid` stopped while inside: what is written meanwhile waits in its watch."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_grant_made_through_one_worker_counts_at_once_on_the_other(
    server: ApiServerProcess, ns: str
) -> None:
    a, b = wait_for_workers(server, WORKERS)
    user = {"Impersonate-User": f"dana-{uuid.uuid4().hex[:6]}"}
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    with pinned(server, a, [a, b]) as via_a, pinned(server, b, [a, b]) as via_b:
        assert via_b.get(cms, headers=user).status_code == 403
        binding = {
            "metadata": {"name": "dana-views"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user["Impersonate-User"]}],
        }  # fmt: skip
        with held(b):
            url = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
            assert via_a.post(url, json=binding).status_code == 201
        # b resumes with the binding still in its watch: the refusal is checked again.
        assert via_b.get(cms, headers=user).status_code == 200


def established(definition: dict) -> bool:
    conditions = (definition.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def test_a_kind_defined_through_one_worker_is_served_at_once_by_the_other(
    server: ApiServerProcess, ns: str
) -> None:
    a, b = wait_for_workers(server, WORKERS)
    group = f"w{uuid.uuid4().hex[:6]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    gadgets = f"/apis/{group}/v1/namespaces/{ns}/gadgets"
    with pinned(server, a, [a, b]) as via_a, pinned(server, b, [a, b]) as via_b:
        try:
            with held(b):
                assert via_a.post(crds, json=crd).status_code == 201
                deadline = time.monotonic() + 30
                while not established(via_a.get(f"{crds}/gadgets.{group}").json()):
                    assert time.monotonic() < deadline, "the definition to be Established"
                    time.sleep(0.05)
            # b resumes with the definition (and its Established status) still in its watch.
            assert via_b.get(gadgets).status_code == 200
            assert group in {g["name"] for g in via_b.get("/apis").json()["groups"]}
        finally:
            via_a.delete(f"{crds}/gadgets.{group}")


def test_increments_through_both_workers_lose_nothing(server: ApiServerProcess, ns: str) -> None:
    """Read-modify-write through both workers at once. Each worker computes an
    update from its own watch cache, which may not hold the other's last write
    yet: the write's CAS on the cached mod_revision catches that, so exactly N
    increments land, and patches (no resourceVersion) all land too."""
    a, b = wait_for_workers(server, WORKERS)
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    counter, patched = f"{cms}/counter", f"{cms}/patched"
    merge = {"Content-Type": "application/merge-patch+json"}
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(pinned(server, pid, [a, b])) for pid in (a, b, a, b)]
        for name in ("counter", "patched"):
            made = clients[0].post(cms, json={"metadata": {"name": name}, "data": {"n": "0"}})
            assert made.status_code == 201, made.text

        def work(i: int) -> int:
            client, conflicts = clients[i], 0
            for j in range(INCREMENTS):
                while True:
                    current = client.get(counter).json()
                    current["data"]["n"] = str(int(current["data"]["n"]) + 1)
                    put = client.put(counter, json=current)
                    if put.status_code == 200:
                        break
                    assert put.status_code == 409, put.text
                    conflicts += 1
                r = client.patch(patched, json={"data": {f"k{i}-{j}": "x"}}, headers=merge)
                assert r.status_code == 200, r.text
            return conflicts

        with ThreadPoolExecutor(len(clients)) as pool:
            conflicts = sum(pool.map(work, range(len(clients))))
        final = clients[1].get(counter).json()
        keys = set(clients[0].get(patched).json()["data"])
    assert final["data"]["n"] == str(INCREMENTS * len(clients)), f"{conflicts} conflicts"
    assert keys == {"n"} | {f"k{i}-{j}" for i in range(len(clients)) for j in range(INCREMENTS)}


def test_a_put_with_the_resource_version_written_through_the_other_worker(
    server: ApiServerProcess, ns: str
) -> None:
    """The resourceVersion a client just got from one worker is current on the
    other too: a PUT naming it succeeds at once (no spurious 409 while that
    worker's cache catches up), and one naming the version before it is 409."""
    a, b = wait_for_workers(server, WORKERS)
    url = f"/api/v1/namespaces/{ns}/configmaps/rv"
    merge = {"Content-Type": "application/merge-patch+json"}
    with pinned(server, a, [a, b]) as via_a, pinned(server, b, [a, b]) as via_b:
        made = via_a.post(url.rsplit("/", 1)[0], json={"metadata": {"name": "rv"}, "data": {}})
        assert made.status_code == 201, made.text
        for i in range(15):
            writer, putter = (via_a, via_b) if i % 2 == 0 else (via_b, via_a)
            written = writer.patch(url, json={"data": {"by": str(i)}}, headers=merge)
            assert written.status_code == 200, written.text
            body = written.json()
            body["data"]["put"] = str(i)
            put = putter.put(url, json=body)
            assert put.status_code == 200, put.text
            assert put.json()["data"] == {"by": str(i), "put": str(i)}
            # `written`'s resourceVersion is stale now, through either worker.
            for client in (writer, putter):
                stale = written.json()
                stale["data"]["late"] = "yes"
                refused = client.put(url, json=stale)
                assert refused.status_code == 409, refused.text
                assert refused.json()["reason"] == "Conflict"
        assert "late" not in via_a.get(url).json()["data"]


def test_a_pod_created_through_one_worker_is_bound_through_the_other(
    server: ApiServerProcess, ns: str
) -> None:
    """What the scheduler does: its binding may reach a worker whose cache has
    not seen the pod's create yet."""
    a, b = wait_for_workers(server, WORKERS)
    pods = f"/api/v1/namespaces/{ns}/pods"
    with pinned(server, a, [a, b]) as via_a, pinned(server, b, [a, b]) as via_b:
        for i in range(10):
            creator, binder = (via_a, via_b) if i % 2 == 0 else (via_b, via_a)
            pod = {
                "metadata": {"name": f"p{i}"},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
            }
            assert creator.post(pods, json=pod).status_code == 201
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": f"p{i}"},
                "target": {"kind": "Node", "name": f"node-{i}"},
            }
            bound = binder.post(f"{pods}/p{i}/binding", json=binding)
            assert bound.status_code == 201, bound.text
            assert creator.get(f"{pods}/p{i}").json()["spec"]["nodeName"] == f"node-{i}"
            again = creator.post(f"{pods}/p{i}/binding", json=binding)
            assert again.status_code == 409, again.text


def test_a_pod_right_after_its_service_account_through_the_other_worker_gets_its_token(
    server: ApiServerProcess, ns: str
) -> None:
    """ServiceAccount admission looks the account up in the watch cache first; an
    account the cache has not seen yet is read from etcd, never taken as absent."""
    a, b = wait_for_workers(server, WORKERS)
    base = f"/api/v1/namespaces/{ns}"
    with pinned(server, a, [a, b]) as via_a, pinned(server, b, [a, b]) as via_b:
        for i in range(6):
            first, second = (via_a, via_b) if i % 2 == 0 else (via_b, via_a)
            made = first.post(f"{base}/serviceaccounts", json={"metadata": {"name": f"sa{i}"}})
            assert made.status_code == 201, made.text
            pod = {
                "metadata": {"name": f"sa-pod-{i}"},
                "spec": {
                    "serviceAccountName": f"sa{i}",
                    "containers": [{"name": "c", "image": "busybox:1.36"}],
                },
            }
            created = second.post(f"{base}/pods", json=pod)
            assert created.status_code == 201, created.text
            volumes = [v["name"] for v in created.json()["spec"].get("volumes", [])]
            assert any(v.startswith("kube-api-access-") for v in volumes), volumes


def test_metrics_add_up_across_workers(server: ApiServerProcess) -> None:
    a, b = wait_for_workers(server, WORKERS)
    url = "/api/v1/namespaces/default/replicationcontrollers"
    with server.client() as api:
        before = _counter(api.get("/metrics").text, "replicationcontrollers")
    with pinned(server, a, [a, b]) as via_a, pinned(server, b, [a, b]) as via_b:
        for _ in range(7):
            assert via_a.get(url).status_code == 200
        for _ in range(5):
            assert via_b.get(url).status_code == 200
        # Whichever worker answers /metrics, it shows both workers' requests.
        assert _counter(via_a.get("/metrics").text, "replicationcontrollers") == before + 12
        assert _counter(via_b.get("/metrics").text, "replicationcontrollers") == before + 12


def test_a_killed_worker_is_replaced_and_the_other_serves_meanwhile(
    server: ApiServerProcess,
) -> None:
    a, b = wait_for_workers(server, WORKERS)
    url = "/api/v1/namespaces/default/replicationcontrollers"
    with server.client() as api:
        before = _counter(api.get("/metrics").text, "replicationcontrollers")
    os.kill(a, signal.SIGKILL)
    for _ in range(10):  # each on a new connection: all taken by the worker still there
        with server.client() as api:
            assert api.get(url).status_code == 200
    deadline = time.monotonic() + 30
    while True:
        pids = worker_pids(server)
        replacement = [p for p in pids if p not in (a, b)]
        if replacement:
            break
        assert time.monotonic() < deadline, f"no worker replaced {a}: {pids}"
        time.sleep(0.1)
    # The new worker serves the port (the other is stopped: only it can accept);
    # the dead worker's requests stay counted.
    with only(replacement[0], [b, replacement[0]]), server.client() as api:
        assert api.get(url).status_code == 200
        assert _counter(api.get("/metrics").text, "replicationcontrollers") == before + 11


def test_sigterm_stops_every_worker_and_etcd(server: ApiServerProcess) -> None:
    assert server.proc is not None
    children = [p for p in _children(server.proc.pid) if _running(p)]
    assert len([p for p in children if "apiserver" in _cmdline(p)]) == WORKERS
    assert any("etcd" in " ".join(_cmdline(p)) for p in children)  # (setpriv) etcd
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while any(_running(p) for p in children):
        assert time.monotonic() < deadline, [p for p in children if _running(p)]
        time.sleep(0.1)


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    """kill -9 of the parent leaves no worker behind (PR_SET_PDEATHSIG)."""
    server = ApiServerProcess(tmp_path / "s", "--workers", str(WORKERS))
    try:
        server.start()
        assert server.proc is not None
        pids = wait_for_workers(server, WORKERS)
        server.proc.kill()
        server.proc.wait()
        deadline = time.monotonic() + 10
        while any(_running(p) for p in pids):
            assert time.monotonic() < deadline, [p for p in pids if _running(p)]
            time.sleep(0.1)
    finally:
        server.stop()  # etcd, by the PID it recorded
