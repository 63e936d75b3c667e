"""The store under faults and local users: etcd's TLS and permissions, crashes of
the apiserver or of its etcd, and values in etcd that do not decode.

Tests that kill the apiserver or its etcd, or start from a hand-made state
directory, run their own apiserver (and embedded etcd). Tests whose faults heal
(etcd stopped and continued, garbage written and deleted again) or that only look
share one per module, each reading only the part of the log written during it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apiserver import certs
from apiserver.etcd_process import EtcdProcess, free_port, members_of
from tests.conftest import ApiServerProcess
from tests.polling import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("etcdctl") is None or shutil.which("runuser") is None,
    reason="needs etcdctl (Debian's etcd-client) and runuser",
)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def etcd_pid(server: Any) -> int:
    return int((server.state_dir / "etcd.pid").read_text())


def health(server: Any, path: str) -> httpx.Response:
    return httpx.get(server.url + path, verify=server.ssl_context(), timeout=15)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *cmd], capture_output=True, text=True, timeout=30
    )


class Watcher:
    """A watch of configmaps in a thread, collecting (type, name) pairs."""

    def __init__(self, server: Any, path: str, resource_version: str) -> None:
        self.events: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(server, path, resource_version), daemon=True
        )
        self._thread.start()

    def _run(self, server: Any, path: str, rv: str) -> None:
        # Like an informer: resume from the last resourceVersion when the stream ends.
        while not self._stop.is_set():
            try:
                with server.client() as api:
                    params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "30"}
                    with api.stream("GET", path, params=params, timeout=40) as r:
                        if r.status_code != 200:
                            self.errors.append(f"{r.status_code}")
                            time.sleep(0.2)
                            continue
                        for line in r.iter_lines():
                            if not line:
                                continue
                            event = json.loads(line)
                            obj = event["object"]
                            if event["type"] == "ERROR":
                                self.errors.append(obj.get("message", ""))
                                break
                            rv = obj["metadata"]["resourceVersion"]
                            if event["type"] != "BOOKMARK":
                                self.events.append((event["type"], obj["metadata"]["name"]))
                            if self._stop.is_set():
                                return
            except (httpx.HTTPError, OSError) as e:
                self.errors.append(repr(e))
                time.sleep(0.2)

    def names(self, kind: str = "ADDED") -> list[str]:
        return [n for t, n in self.events if t == kind]

    def stop(self) -> None:
        self._stop.set()


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    """One apiserver for the tests whose faults heal; a short livez grace period for
    the test of health while etcd is unreachable (it changes nothing while etcd runs)."""
    server = ApiServerProcess(
        tmp_path_factory.mktemp("store-shared"), "--etcd-livez-grace-period", "2"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(shared: ApiServerProcess) -> ApiServerProcess:
    """The shared apiserver, ready again: a test before may have stopped its etcd."""
    eventually(lambda: health(shared, "/readyz").status_code == 200, 40, "readyz")
    return shared


def log_since(server: ApiServerProcess, start: int) -> str:
    with open(server.log, "rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


# -- 1. etcd over TLS, root-only state ------------------------------------------


def test_etcd_refuses_local_users_and_keys_are_root_only(server: ApiServerProcess) -> None:
    state = server.state_dir
    assert mode(state / "pki") == 0o700
    assert mode(state / "pki" / "etcd") == 0o700
    assert mode(state / "etcd") == 0o700
    for name in ("etcd.log", "etcd-ports.json", "admin.kubeconfig", "pki/tokens.csv"):
        assert mode(state / name) == 0o600, name
    keys = sorted((state / "pki").rglob("*.key"))
    assert {k.name for k in keys} >= {
        "ca.key",
        "server.key",
        "peer.key",
        "apiserver-etcd-client.key",
    }
    for key in keys:
        assert mode(key) == 0o600, key
        assert as_nobody("cat", str(key)).returncode != 0, key

    endpoint = server.etcd_url
    assert endpoint.startswith("https://")
    put = ["put", "/registry/configmaps/default/from-nobody", "x"]
    common = ["etcdctl", "--command-timeout", "3s", "--dial-timeout", "2s"]
    # Without a client certificate: refused over TLS, and there is no plain HTTP.
    no_cert = as_nobody(*common, "--endpoints", endpoint, "--insecure-skip-tls-verify", *put)
    assert no_cert.returncode != 0
    plain = as_nobody(*common, "--endpoints", endpoint.replace("https", "http"), *put)
    assert plain.returncode != 0
    # nobody cannot use the apiserver's certificate either: it cannot read it.
    with_files = as_nobody(*common, "--endpoints", endpoint, *server.etcd_cert_args(), *put)
    assert with_files.returncode != 0

    # The same command with the certificate, as root, works: the refusals were about
    # the certificate, not a dead etcd.
    got = server.etcdctl("get", "/registry/namespaces/default", "--print-value-only")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["metadata"]["name"] == "default"
    with server.client() as api:
        assert api.get("/api/v1/namespaces/default/configmaps/from-nobody").status_code == 404
        made = api.post("/api/v1/namespaces/default/configmaps", json=configmap("ok"))
        assert made.status_code == 201, made.text


def test_state_of_an_older_skiff_upgrades_itself(start_apiserver: Any, tmp_path: Path) -> None:
    """Plain-HTTP etcd data, pki/ at 0755, etcd.log and ports at 0644: the next start
    serves etcd over TLS, keeps the data, advertises an https peer URL, tightens modes."""
    state = tmp_path / "old-state"
    (state / "pki").mkdir(parents=True)
    (state / "pki").chmod(0o755)
    client, peer = free_port(), free_port()
    old = EtcdProcess(data_dir=state / "etcd", client_port=client, peer_port=peer)
    old.start()
    try:
        value = configmap("from-before", kept="yes")
        value["metadata"].update(
            namespace="default", uid=str(uuid.uuid4()), creationTimestamp="2026-01-01T00:00:00Z"
        )
        put = subprocess.run(
            ["etcdctl", "--endpoints", old.url, "put", "/registry/configmaps/default/from-before"],
            input=json.dumps(value),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert put.returncode == 0, put.stderr
    finally:
        old.stop()
    (state / "etcd").chmod(0o755)
    (state / "etcd-ports.json").write_text(json.dumps({"client": client, "peer": peer}))
    (state / "etcd-ports.json").chmod(0o644)
    (state / "etcd.log").chmod(0o644)

    server = start_apiserver(state_dir=state)
    with server.client() as api:
        got = api.get("/api/v1/namespaces/default/configmaps/from-before")
        assert got.status_code == 200, got.text
        assert got.json()["data"] == {"kept": "yes"}
    assert server.etcd_url == f"https://127.0.0.1:{client}"
    members = server.etcdctl("member", "list", "-w", "json")
    assert members.returncode == 0, members.stderr
    [member] = json.loads(members.stdout)["members"]
    assert member["peerURLs"] == [f"https://127.0.0.1:{peer}"]
    assert mode(state / "pki") == 0o700 and mode(state / "etcd") == 0o700
    assert mode(state / "etcd-ports.json") == 0o600 and mode(state / "etcd.log") == 0o600


# -- 2. kill -9 of the apiserver ------------------------------------------------


def test_etcd_dies_with_a_killed_apiserver_and_restart_comes_up(start_apiserver: Any) -> None:
    server = start_apiserver()
    with server.client() as api:
        assert api.post("/api/v1/namespaces/default/configmaps", json=configmap("a")).is_success
    pid = etcd_pid(server)
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    eventually(lambda: not running(pid), 20, "the orphaned etcd to exit")

    server.start()
    assert etcd_pid(server) != pid
    with server.client() as api:
        assert api.get("/api/v1/namespaces/default/configmaps/a").status_code == 200
    ports = json.loads((server.state_dir / "etcd-ports.json").read_text())
    [member] = json.loads(server.etcdctl("member", "list", "-w", "json").stdout)["members"]
    assert member["peerURLs"] == [f"https://127.0.0.1:{ports['peer']}"]


def test_a_leftover_member_on_the_data_dir_is_stopped_first(start_apiserver: Any) -> None:
    """An etcd left running on our data dir (an older skiff's orphan, its pid file
    lost) is stopped before the new one starts: never two members on one data dir."""
    server = start_apiserver()
    with server.client() as api:
        assert api.post("/api/v1/namespaces/default/configmaps", json=configmap("b")).is_success
    server.stop()
    ports = json.loads((server.state_dir / "etcd-ports.json").read_text())
    orphan = EtcdProcess(
        data_dir=server.state_dir / "etcd",
        client_port=ports["client"],
        peer_port=ports["peer"],
        log_path=server.state_dir / "orphan-etcd.log",
        pki=certs.ensure_etcd_pki(server.state_dir / "pki"),
    )
    orphan.start()
    try:
        assert orphan.proc is not None
        assert not (server.state_dir / "etcd.pid").exists()
        server.start()
        eventually(lambda: orphan.proc is not None and orphan.proc.poll() is not None, 20, "orphan")
        data_dir = (server.state_dir / "etcd").resolve()
        assert members_of(data_dir) == [etcd_pid(server)]
        with server.client() as api:
            assert api.get("/api/v1/namespaces/default/configmaps/b").status_code == 200
    finally:
        orphan.stop()


def test_a_second_apiserver_on_the_same_state_dir_leaves_the_first_alone(
    start_apiserver: Any,
) -> None:
    """Starting stops leftover members; a second apiserver on a state directory in
    use must not stop the first one's live etcd, so it refuses to start."""
    first = start_apiserver()
    pid = etcd_pid(first)
    with pytest.raises(RuntimeError, match="another skiff apiserver runs the etcd of"):
        start_apiserver(state_dir=first.state_dir)
    assert running(pid) and etcd_pid(first) == pid
    assert health(first, "/readyz").status_code == 200


# -- 3. a value that does not decode --------------------------------------------


def test_an_undecodable_value_costs_one_object_never_the_stream(server: ApiServerProcess) -> None:
    log_start = server.log.stat().st_size
    with server.client() as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": "other"}})
        rv = api.get("/api/v1/configmaps").json()["metadata"]["resourceVersion"]
        in_other = Watcher(server, "/api/v1/namespaces/other/configmaps", rv)
        everywhere = Watcher(server, "/api/v1/configmaps", rv)
        try:
            bad, wrong_kind = "/registry/configmaps/default/bad", "/registry/configmaps/default/pod"
            assert server.etcdctl("put", bad, "not json {").returncode == 0
            pod = '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pod"}}'
            assert server.etcdctl("put", wrong_kind, pod).returncode == 0

            one = api.get("/api/v1/namespaces/default/configmaps/bad")
            assert one.status_code == 500
            assert one.json()["reason"] == "InternalError"
            assert bad in one.json()["message"]
            assert wrong_kind in api.get("/api/v1/namespaces/default/configmaps/pod").text
            for path in ("/api/v1/namespaces/default/configmaps", "/api/v1/configmaps"):
                listed = api.get(path)
                assert listed.status_code == 500, path
                assert "failed to decode" in listed.json()["message"]
            # Other namespaces list fine, and every watch goes on.
            assert api.get("/api/v1/namespaces/other/configmaps").status_code == 200
            made = api.post("/api/v1/namespaces/other/configmaps", json=configmap("after"))
            assert made.status_code == 201
            eventually(lambda: "after" in in_other.names(), 20, "the watch in another namespace")
            eventually(lambda: "after" in everywhere.names(), 20, "the cluster-wide watch")

            # Deleting the keys heals everything.
            assert server.etcdctl("del", bad).stdout.strip() == "1"
            assert server.etcdctl("del", wrong_kind).stdout.strip() == "1"
            assert api.get("/api/v1/configmaps").status_code == 200
            assert api.get("/api/v1/namespaces/default/configmaps").status_code == 200
            assert api.get("/api/v1/namespaces/default/configmaps/bad").status_code == 404
            api.post("/api/v1/namespaces/default/configmaps", json=configmap("healed"))
            eventually(lambda: "healed" in everywhere.names(), 20, "a ConfigMap after healing")
        finally:
            in_other.stop()
            everywhere.stop()
    assert "bad" not in everywhere.names() and "pod" not in everywhere.names()
    log = log_since(server, log_start)
    assert "watch on /registry/configmaps/ broke" not in log
    assert "skipping a watch event that does not decode" in log


# -- 4. etcd dies or hangs while the apiserver runs -----------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_killed_etcd_is_restarted_and_watches_resume(start_apiserver: Any, sig: int) -> None:
    """etcd killed, or stopped cleanly (which closes the watch stream without an
    error): the apiserver starts it again and open watches miss nothing."""
    server = start_apiserver()  # its own: each restart of etcd doubles the next delay
    with server.client() as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": "w"}})
        rv = api.get("/api/v1/namespaces/w/configmaps").json()["metadata"]["resourceVersion"]
        watcher = Watcher(server, "/api/v1/namespaces/w/configmaps", rv)
        try:
            assert api.post("/api/v1/namespaces/w/configmaps", json=configmap("c1")).is_success
            eventually(lambda: "c1" in watcher.names(), 20, "c1 on the watch")
            old = etcd_pid(server)
            os.kill(old, sig)
            eventually(lambda: etcd_pid(server) != old, 30, "a new etcd")
            eventually(lambda: health(server, "/readyz").status_code == 200, 30, "readyz")
            made = api.post("/api/v1/namespaces/w/configmaps", json=configmap("c2"))
            assert made.status_code == 201, made.text
            eventually(lambda: "c2" in watcher.names(), 30, "c2 on the watch")
            time.sleep(0.5)  # room for a repeated event to show up, if there were one
        finally:
            watcher.stop()
    assert watcher.names() == ["c1", "c2"]
    # etcd re-raises SIGTERM after its clean shutdown, so both end by the signal.
    assert f"exited with code {-sig}; starting it again in 1s" in server.log.read_text()


def test_etcd_moves_when_its_port_was_taken_meanwhile(start_apiserver: Any) -> None:
    """Someone else listens on etcd's client port after etcd died: etcd comes back
    on other ports, the apiserver follows it, and the peer URL is corrected."""
    server = start_apiserver()  # its own: the first restart of etcd waits 1 s
    before = json.loads((server.state_dir / "etcd-ports.json").read_text())
    pid = etcd_pid(server)
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not running(pid), 10, "etcd to die")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

        def bound() -> bool:
            # etcd's threads may still hold the port an instant after its leader exited.
            try:
                squatter.bind(("127.0.0.1", before["client"]))
            except OSError:
                return False
            return True

        eventually(bound, 0.8, "etcd's port to be free", interval=0.1)  # the apiserver waits 1 s
        squatter.listen()
        eventually(lambda: etcd_pid(server) != pid, 30, "a new etcd")
        eventually(lambda: health(server, "/readyz").status_code == 200, 40, "readyz")
        after = json.loads((server.state_dir / "etcd-ports.json").read_text())
        assert after["client"] != before["client"]
        with server.client() as api:
            made = api.post("/api/v1/namespaces/default/configmaps", json=configmap("moved"))
            assert made.status_code == 201, made.text

    def member() -> dict[str, Any]:
        listed = server.etcdctl("member", "list", "-w", "json")
        assert listed.returncode == 0, listed.stderr
        [only] = json.loads(listed.stdout)["members"]
        return dict(only)

    # The apiserver rewrites the stored peer URL just after the member is back.
    peer_url = f"https://127.0.0.1:{after['peer']}"
    eventually(lambda: member()["peerURLs"] == [peer_url], 20, "the new peer URL")
    assert member()["clientURLs"] == [f"https://127.0.0.1:{after['client']}"]


def test_health_tells_the_truth_while_etcd_is_unreachable(server: ApiServerProcess) -> None:
    """A stopped (SIGSTOP) etcd does not answer: /readyz fails at once, /livez after
    its grace period, requests answer 503 with a Status; SIGCONT heals everything."""
    assert health(server, "/livez").text == "ok"
    pid = etcd_pid(server)
    os.kill(pid, signal.SIGSTOP)
    try:
        ready = eventually(
            lambda: (r := health(server, "/readyz")).status_code == 500 and r, 10, "readyz 500"
        )
        assert "[-]etcd failed" in ready.text and "readyz check failed" in ready.text
        live = eventually(
            lambda: (r := health(server, "/livez")).status_code == 500 and r, 20, "livez 500"
        )
        assert "[+]ping ok" in live.text
        assert "[-]etcd failed: reason withheld" in live.text
        assert live.text.rstrip().endswith("livez check failed")
        with server.client() as api:
            r = api.get("/api/v1/namespaces/default/configmaps", timeout=30)
        assert r.status_code == 503, r.text
        status = r.json()
        assert status["kind"] == "Status" and status["reason"] == "ServiceUnavailable"
        assert "etcd" in status["message"]
        assert r.headers.get("retry-after") == "1"
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: health(server, "/livez").status_code == 200, 30, "livez back")
    eventually(lambda: health(server, "/readyz").status_code == 200, 30, "readyz back")
    with server.client() as api:
        assert api.post("/api/v1/namespaces/default/configmaps", json=configmap("z")).is_success
    verbose = health(server, "/livez?verbose")
    assert verbose.status_code == 200 and "[+]etcd ok" in verbose.text


# -- the size limits agree ------------------------------------------------------


def test_objects_up_to_the_body_limit_are_stored(server: ApiServerProcess) -> None:
    """etcd's default request limit (1.5 MiB) is below the API's 3 MiB body limit:
    the embedded etcd accepts what the API accepts."""
    big = configmap("big", blob="x" * (2 * 1024 * 1024 + 512 * 1024))
    with server.client() as api:
        made = api.post("/api/v1/namespaces/default/configmaps", json=big)
        assert made.status_code == 201, made.text[:300]
        got = api.get("/api/v1/namespaces/default/configmaps/big")
        assert got.status_code == 200 and len(got.json()["data"]["blob"]) == len(
            big["data"]["blob"]
        )
        too_big = configmap("too-big", blob="x" * (3 * 1024 * 1024 + 10))
        refused = api.post("/api/v1/namespaces/default/configmaps", json=too_big)
        assert refused.status_code == 413, refused.text[:300]


def test_etcd_over_tls_from_flags(start_apiserver: Any, tmp_path: Path) -> None:
    """--etcd-servers https://… with --etcd-cafile/--etcd-certfile/--etcd-keyfile,
    as kube-apiserver takes them, against an etcd that requires client certificates."""
    pki = certs.ensure_etcd_pki(tmp_path / "pki")
    etcd = EtcdProcess(data_dir=tmp_path / "etcd-data", pki=pki)
    etcd.start()
    try:

        async def ready() -> None:
            from apiserver.storage import ClientTLS, Store

            store = Store(
                [etcd.url],
                tls=ClientTLS(pki.ca.cert, pki.apiserver_client.cert, pki.apiserver_client.key),
            )
            await store.connect(retry_for=20)
            await store.close()

        asyncio.run(ready())
        server = start_apiserver(
            "--etcd-servers", etcd.url,
            "--etcd-cafile", str(pki.ca.cert),
            "--etcd-certfile", str(pki.apiserver_client.cert),
            "--etcd-keyfile", str(pki.apiserver_client.key),
        )  # fmt: skip
        with server.client() as api:
            made = api.post("/api/v1/namespaces/default/configmaps", json=configmap("tls"))
            assert made.status_code == 201, made.text
        server.stop()
        assert etcd.proc is not None and etcd.proc.poll() is None
    finally:
        etcd.stop()
