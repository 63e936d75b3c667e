"""Stop the apiserver (and its embedded etcd), start it again: state and watches survive."""

from __future__ import annotations

import json
from typing import Any


def test_restart_keeps_everything_and_watch_resumes(start_apiserver: Any, build: Any) -> None:
    server = start_apiserver()
    with server.client() as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": "keep"}})
        made = api.post("/api/v1/namespaces/keep/pods", json=build.pod("survivor"))
        assert made.status_code == 201
        uid = made.json()["metadata"]["uid"]
        rv = api.get("/api/v1/namespaces/keep/pods").json()["metadata"]["resourceVersion"]
    token, ca = server.token, server.ca.read_bytes()

    server.stop()
    server.start()

    # Same credentials, same CA, same data.
    assert server.token == token and server.ca.read_bytes() == ca
    with server.client() as api:
        pod = api.get("/api/v1/namespaces/keep/pods/survivor")
        assert pod.status_code == 200
        assert pod.json()["metadata"]["uid"] == uid
        assert api.get("/api/v1/namespaces/default/services/kubernetes").status_code == 200
        # A watcher resumes from the resourceVersion it had before the restart.
        api.post("/api/v1/namespaces/keep/pods", json=build.pod("newcomer"))
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": 5}
        with api.stream("GET", "/api/v1/namespaces/keep/pods", params=params) as r:
            first = json.loads(next(r.iter_lines()))
    assert first["type"] == "ADDED"
    assert first["object"]["metadata"]["name"] == "newcomer"


def test_external_etcd_servers_flag(start_apiserver: Any, tmp_path: Any) -> None:
    """--etcd-servers uses an etcd someone else runs; stopping the apiserver leaves it up."""
    from apiserver.etcd_process import EtcdProcess

    etcd = EtcdProcess(data_dir=tmp_path / "etcd-data")
    etcd.start()
    try:
        server = start_apiserver("--etcd-servers", etcd.url)
        with server.client() as api:
            r = api.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "x"}})
            assert r.status_code == 201
        server.stop()
        assert etcd.proc is not None and etcd.proc.poll() is None
        assert not (server.state_dir / "etcd").exists()
    finally:
        etcd.stop()
