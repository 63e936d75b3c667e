"""HTTPS only; bearer tokens and client certificates; 401 for everyone else."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import yaml


def test_no_credentials_is_401_except_health(apiserver: Any) -> None:
    with httpx.Client(base_url=apiserver.url, verify=apiserver.ssl_context()) as anon:
        r = anon.get("/api/v1/namespaces")
        assert r.status_code == 401
        assert r.json()["reason"] == "Unauthorized"
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            assert anon.get(path).status_code == 200, path
        assert anon.get("/version").json()["major"] == "1"


def test_bad_token_is_refused(apiserver: Any) -> None:
    with apiserver.client(token="not-a-real-token") as bad:
        assert bad.get("/api/v1/namespaces").status_code == 401
        assert bad.get("/healthz").status_code == 401


def test_plain_http_is_not_served(apiserver: Any) -> None:
    try:
        r = httpx.get(f"http://127.0.0.1:{apiserver.port}/version", timeout=5)
    except httpx.HTTPError:
        return
    assert r.status_code == 400  # uvicorn answers a plain request on a TLS port with 400 or resets


def test_client_certificate_identifies_user(apiserver: Any, tmp_path: Path) -> None:
    pki = apiserver.state_dir / "pki"
    context = apiserver.ssl_context()
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with httpx.Client(base_url=apiserver.url, verify=context) as client:
        r = client.get("/api/v1/namespaces/default")
        assert r.status_code == 200, r.text


def test_certificate_from_another_ca_is_ignored(apiserver: Any, tmp_path: Path) -> None:
    """As kube-apiserver: the handshake asks for a client certificate without requiring
    one, a certificate that does not verify identifies nobody, and the request falls
    through to the other authenticators (a bearer token) or gets 401."""
    from apiserver import certs

    other_ca = certs.ensure_ca(tmp_path / "other")
    pair = certs.ensure_client_cert(
        tmp_path / "other", other_ca, "x", "mallory", ["system:masters"]
    )
    context = apiserver.ssl_context()
    context.load_cert_chain(str(pair.cert), str(pair.key))
    with httpx.Client(base_url=apiserver.url, verify=context) as client:
        r = client.get("/api/v1/namespaces")
        assert r.status_code == 401, r.text
        assert r.json()["reason"] == "Unauthorized"
        assert client.get("/healthz").status_code == 200
        with_token = client.get(
            "/api/v1/namespaces", headers={"Authorization": f"Bearer {apiserver.token}"}
        )
        assert with_token.status_code == 200, with_token.text
    # The cluster's own client certificates still identify their user.
    pki = apiserver.state_dir / "pki"
    good = apiserver.ssl_context()
    good.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with httpx.Client(base_url=apiserver.url, verify=good) as client:
        assert client.get("/api/v1/namespaces").status_code == 200


def test_admin_kubeconfig_is_complete(apiserver: Any) -> None:
    config = yaml.safe_load(apiserver.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://127.0.0.1:{apiserver.port}"
    assert base64.b64decode(cluster["certificate-authority-data"]).startswith(b"-----BEGIN")
    assert config["current-context"]
