"""The audit log: policy levels, rules by user/verb/resource, secrets never above
Metadata, impersonation and decisions recorded; a bad policy is one readable line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, Users, eventually

POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz", "/readyz", "/livez"]
- level: None
  users: ["quiet-user"]
- level: RequestResponse
  resources:
  - group: ""
    resources: ["secrets", "configmaps"]
- level: Request
  verbs: ["create", "update", "patch", "delete"]
- level: Metadata
"""


@pytest.fixture
def audited(start_apiserver: Any, tmp_path: Path) -> tuple[Any, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    log = tmp_path / "audit" / "audit.log"
    server = start_apiserver("--audit-policy-file", str(policy), "--audit-log-path", str(log))
    return server, log


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def test_levels_and_secrets(audited: tuple[Any, Path], tmp_path: Path) -> None:
    server, log = audited
    users = Users(server, tmp_path)
    with server.client() as api:
        secret = {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
        assert api.post("/api/v1/namespaces/default/secrets", json=secret).status_code == 201
        assert api.get("/api/v1/namespaces/default/secrets/s").status_code == 200
        cm = {"metadata": {"name": "c"}, "data": {"colour": "blue"}}
        assert api.post("/api/v1/namespaces/default/configmaps", json=cm).status_code == 201
        pod = {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        assert api.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
        assert api.get("/api/v1/namespaces/default/pods").status_code == 200
        assert api.get("/healthz").status_code == 200
        r = api.get("/api/v1/namespaces/default/pods", headers={"Impersonate-User": "someone"})
        assert r.status_code == 403
    quiet = users.client("quiet-user")
    assert quiet.get("/api/v1/namespaces/default/pods").status_code == 403
    users.close()

    def written() -> list[dict[str, Any]]:
        return events(log)

    eventually(lambda: len(written()) >= 6, what="events")
    all_events = written()
    text = log.read_text()
    assert "hunter2" not in text and "aHVudGVyMg" not in text  # neither plain nor base64
    assert all(e["stage"] == "ResponseComplete" for e in all_events)
    assert all(e["apiVersion"] == "audit.k8s.io/v1" and e["kind"] == "Event" for e in all_events)
    assert not any(e["requestURI"].startswith("/healthz") for e in all_events)
    assert not any(e["user"]["username"] == "quiet-user" for e in all_events)

    def one(verb: str, resource: str) -> dict[str, Any]:
        return next(
            e
            for e in all_events
            if e["verb"] == verb and e.get("objectRef", {}).get("resource") == resource
        )

    created_secret = one("create", "secrets")
    assert created_secret["level"] == "Metadata"  # the policy said RequestResponse
    assert "requestObject" not in created_secret and "responseObject" not in created_secret
    assert one("get", "secrets")["objectRef"]["name"] == "s"
    created_cm = one("create", "configmaps")
    assert created_cm["level"] == "RequestResponse"
    assert created_cm["requestObject"]["data"] == {"colour": "blue"}
    assert created_cm["responseObject"]["metadata"]["name"] == "c"
    created_pod = one("create", "pods")
    assert created_pod["level"] == "Request"
    assert created_pod["requestObject"]["metadata"]["name"] == "p"
    assert "responseObject" not in created_pod
    assert created_pod["responseStatus"]["code"] == 201
    assert created_pod["user"]["username"] == "kubernetes-admin"
    assert created_pod["annotations"]["authorization.k8s.io/decision"] == "allow"
    listed = [e for e in all_events if e["verb"] == "list" and e["objectRef"]["resource"] == "pods"]
    assert listed[0]["level"] == "Metadata" and "requestObject" not in listed[0]
    impersonated = next(e for e in listed if "impersonatedUser" in e)
    assert impersonated["impersonatedUser"]["username"] == "someone"
    assert impersonated["responseStatus"]["code"] == 403
    assert impersonated["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert impersonated["responseStatus"]["reason"] == "Forbidden"


def test_bad_policy_is_one_readable_line(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "apiserver",
            "--state-dir",
            str(tmp_path / "s"),
            "--audit-policy-file",
            str(policy),
            "--audit-log-path",
            str(tmp_path / "a.log"),
            "--secure-port",
            "0",
            "--bind-address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "skiff apiserver: rules[0].level must be one of None, Metadata, Request, RequestResponse"
    )


def test_audit_log_rotates_by_size(tmp_path: Path) -> None:
    from apiserver.audit import RotatingWriter

    writer = RotatingWriter(tmp_path / "audit.log", max_bytes=1000, backups=2)
    for i in range(100):
        writer.write({"n": i, "pad": "x" * 80})
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 1000
    last = [json.loads(line)["n"] for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert last[-1] == 99
    older = [json.loads(line)["n"] for line in (tmp_path / "audit.log.1").read_text().splitlines()]
    assert older[-1] == last[0] - 1
