"""A custom resource defined after etcd was compacted can be watched.

The apiserver's watch hubs start at the server's start revision; a hub made
later (the first watch of a new custom resource) must not start from a
revision etcd has compacted away, or every watch of that resource answers an
ERROR event (seen: a kopf operator on a cluster up for more than five minutes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.conftest import ApiServerProcess
from tests.integration.crd.test_crd import crd_manifest, cron_tab


def first_event_is_gone(api: httpx.Client, url: str, rv: str) -> bool:
    """True when a watch from `rv` starts with an ERROR event: etcd compacted it."""
    params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "2"}
    with api.stream("GET", url, params=params) as r:
        for line in r.iter_lines():
            if line:
                return bool(json.loads(line)["type"] == "ERROR")
    return False


def test_a_crd_made_after_a_compaction_is_watched(tmp_path: Path) -> None:
    server = ApiServerProcess(tmp_path / "apiserver", "--etcd-compaction-interval", "2")
    server.start()
    try:
        with server.client() as api:
            cms = "/api/v1/namespaces/default/configmaps"
            first_rv = ""
            for i in range(5):  # history, then a compaction of all of it
                r = api.post(cms, json={"metadata": {"name": f"c{i}"}})
                assert r.status_code == 201, r.text
                first_rv = first_rv or r.json()["metadata"]["resourceVersion"]
            # A watch from the first ConfigMap's revision answers 410 once etcd has
            # compacted past it (and so past the server's start revision).
            deadline = time.monotonic() + 30
            while not first_event_is_gone(api, cms, first_rv):
                assert time.monotonic() < deadline, "no compaction within 30 s"
                api.post(cms, json={"metadata": {"generateName": "c-"}})  # history moves on
                time.sleep(0.2)
            group = "late.example.com"
            server.kubectl("apply", "-f", "-", input=json.dumps(crd_manifest(group)))
            server.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
            url = f"/apis/{group}/v1/namespaces/default/crontabs"
            rv = api.get(url).json()["metadata"]["resourceVersion"]
            server.kubectl("apply", "-n", "default", "-f", "-", input=cron_tab(group, "w"))
            params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "5"}
            with api.stream("GET", url, params=params) as r:
                event = json.loads(next(r.iter_lines()))
        assert event["type"] == "ADDED", event
        assert event["object"]["metadata"]["name"] == "w"
    finally:
        server.stop()
