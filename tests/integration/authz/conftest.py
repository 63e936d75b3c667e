"""Users for authorization tests: client certificates from the cluster CA.

A user here is a name and groups; `Users.client(name, groups)` is an httpx
client presenting that identity, `Users.kubeconfig(...)` a kubeconfig made by
`python -m apiserver.identities user ...` as an admin would make one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apiserver import certs
from tests.polling import eventually

__all__ = ["eventually"]  # the tests here import it from this conftest

ROOT = Path(__file__).resolve().parents[3]


class Users:
    def __init__(self, server: Any, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self._clients: list[httpx.Client] = []

    def pair(self, name: str, groups: tuple[str, ...] = ()) -> certs.KeyPair:
        pki = self.server.state_dir / "pki"
        safe = name.replace(":", "-")
        return certs.issue(
            certs.KeyPair(pki / "ca.crt", pki / "ca.key"),
            certs.KeyPair(self.tmp / f"{safe}.crt", self.tmp / f"{safe}.key"),
            common_name=name,
            organizations=groups,
            client=True,
        )

    def client(self, name: str, groups: tuple[str, ...] = ()) -> httpx.Client:
        pair = self.pair(name, groups)
        context = self.server.ssl_context()
        context.load_cert_chain(str(pair.cert), str(pair.key))
        client = httpx.Client(base_url=self.server.url, verify=context, timeout=30)
        self._clients.append(client)
        return client

    def kubeconfig(self, name: str, groups: tuple[str, ...] = ()) -> Path:
        out = self.tmp / f"{name.replace(':', '-')}.kubeconfig"
        args = [
            sys.executable,
            "-m",
            "apiserver.identities",
            "--state-dir",
            str(self.server.state_dir),
            "user",
            name,
            "--out",
            str(out),
        ]
        for g in groups:
            args += ["--group", g]
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
        assert json.loads(done.stdout)["kubeconfig"] == str(out)
        return out

    def close(self) -> None:
        for c in self._clients:
            c.close()


@pytest.fixture
def users(apiserver: Any, tmp_path: Path) -> Iterator[Users]:
    u = Users(apiserver, tmp_path)
    try:
        yield u
    finally:
        u.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


def bind(
    api: httpx.Client,
    namespace: str,
    role: str,
    *,
    user: str = "",
    group: str = "",
    kind: str = "ClusterRole",
    name: str = "",
) -> None:
    subject = {"kind": "User", "name": user} if user else {"kind": "Group", "name": group}
    subject["apiGroup"] = "rbac.authorization.k8s.io"
    body = {
        "metadata": {"name": name or f"{role}-{user or group}".replace(":", "-")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [subject],
    }
    if namespace:
        url = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"
    else:
        url = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    r = api.post(url, json=body)
    assert r.status_code == 201, r.text


def make_namespace(api: httpx.Client, name: str) -> str:
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert r.status_code == 201, r.text
    return name
