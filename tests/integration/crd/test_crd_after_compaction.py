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

from tests.conftest import ApiServerProcess
from tests.integration.crd.test_crd import crd_manifest, cron_tab


def test_a_crd_made_after_a_compaction_is_watched(tmp_path: Path) -> None:
    server = ApiServerProcess(tmp_path / "apiserver", "--etcd-compaction-interval", "2")
    server.start()
    try:
        with server.client() as api:
            for i in range(20):  # history, then compactions of it
                r = api.post(
                    "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": f"c{i}"}}
                )
                assert r.status_code == 201, r.text
                time.sleep(0.3)
            time.sleep(5)
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
