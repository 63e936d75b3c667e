"""Crash tests: `kill -9` the apiserver, then its etcd, then both, while a client
writes; every time the cluster comes back by itself and no acknowledged write
is lost.

The test plays the part of the apiserver's supervisor (systemd, kubelet): when
the apiserver dies it starts it again on the same state directory. etcd is
restarted by the apiserver itself. A write counts as acknowledged when the API
answered 201; writes that failed (connection refused, 503 while etcd was
down) may or may not have happened, and are not counted.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.polling import eventually

ITERATIONS = 3


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class Writer:
    """Creates ConfigMaps one after another, remembering which the API acknowledged."""

    def __init__(self, server: Any, namespace: str) -> None:
        self.server = server
        self.path = f"/api/v1/namespaces/{namespace}/configmaps"
        self.acknowledged: dict[str, str] = {}
        self.failed = 0
        self.errors: dict[str, int] = {}  # why writes failed, for the failure message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                with self.server.client() as api:
                    while not self._stop.is_set():
                        name, value = f"w-{i}", f"value-{i}"
                        i += 1
                        body = {"metadata": {"name": name}, "data": {"v": value}}
                        r = api.post(self.path, json=body, timeout=5)
                        if r.status_code == 201:
                            self.acknowledged[name] = value
                        else:
                            self.failed += 1
                            code = str(r.status_code)
                            self.errors[code] = self.errors.get(code, 0) + 1
                            time.sleep(0.05)
            except Exception as e:  # a crash may end a request any way; the next one is new
                self.failed += 1
                self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
                time.sleep(0.05)

    def wait_for_progress(self, after: str, more: int = 10, timeout: float = 45.0) -> None:
        """Until the writer got `more` new acknowledgements: the cluster is back."""
        target = len(self.acknowledged) + more
        eventually(
            lambda: len(self.acknowledged) >= target,
            timeout,
            lambda: f"writes acknowledged again {after} (failures: {self.errors})",
            interval=0.05,
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def kill_apiserver(server: Any) -> None:
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()


def kill_etcd(server: Any) -> int:
    pid = int((server.state_dir / "etcd.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


def test_kill_apiserver_then_etcd_then_both_loses_no_acknowledged_write(
    start_apiserver: Any,
) -> None:
    server = start_apiserver()
    with server.client() as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "crash"}}).is_success
    writer = Writer(server, "crash").start()
    crashes = 0
    try:
        writer.wait_for_progress("at the start")
        for _ in range(ITERATIONS):
            # 1. the apiserver alone: its etcd goes with it; the supervisor restarts it.
            old_etcd = int((server.state_dir / "etcd.pid").read_text())
            kill_apiserver(server)
            server.start()
            assert not running(old_etcd)
            writer.wait_for_progress("after the apiserver was killed")
            # 2. etcd alone: the apiserver starts it again by itself.
            kill_etcd(server)
            writer.wait_for_progress("after etcd was killed")
            # 3. both at once.
            kill_etcd(server)
            kill_apiserver(server)
            server.start()
            writer.wait_for_progress("after both were killed")
            crashes += 3
    finally:
        writer.stop()

    with server.client() as api:
        listed = api.get("/api/v1/namespaces/crash/configmaps")
    assert listed.status_code == 200
    stored = {i["metadata"]["name"]: i["data"]["v"] for i in listed.json()["items"]}
    lost = [name for name in writer.acknowledged if stored.get(name) != writer.acknowledged[name]]
    print(
        f"\ncrash test: {ITERATIONS} iterations, {crashes} crashes, "
        f"{len(writer.acknowledged)} writes acknowledged, {writer.failed} failed while down "
        f"{writer.errors}, "
        f"{len(stored)} stored, {len(lost)} lost"
    )
    assert lost == []
    assert crashes == 3 * ITERATIONS
