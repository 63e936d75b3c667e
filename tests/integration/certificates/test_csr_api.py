"""The CertificateSigningRequest API with the real kubectl, and what a bootstrap token may do."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[3]


def csr_manifest(name: str, cn: str) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    req = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    pem = req.public_bytes(serialization.Encoding.PEM)
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "username": "forged",
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    }


def test_kubectl_creates_approves_and_denies(apiserver: Any, tmp_path: Path) -> None:
    name = f"csr-{uuid.uuid4().hex[:6]}"
    (tmp_path / "csr.json").write_text(json.dumps(csr_manifest(name, "system:node:vm9")))
    apiserver.kubectl("create", "-f", str(tmp_path / "csr.json"))
    got = json.loads(apiserver.kubectl("get", "csr", name, "-o", "json"))
    assert got["spec"]["username"] not in ("", "forged")  # from the credentials, not the body
    assert "Pending" in apiserver.kubectl("get", "csr", name)
    assert "approved" in apiserver.kubectl("certificate", "approve", name)
    got = json.loads(apiserver.kubectl("get", "csr", name, "-o", "json"))
    assert [c["type"] for c in got["status"]["conditions"]] == ["Approved"]
    row = apiserver.kubectl("get", "csr", name)
    assert "kubernetes.io/kube-apiserver-client-kubelet" in row and "Approved" in row
    apiserver.kubectl("delete", "csr", name)


def test_a_bootstrap_token_may_request_a_certificate_and_nothing_else(apiserver: Any) -> None:
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "token",
            "--kubeconfig",
            str(apiserver.kubeconfig),
            "create",
            "--ttl",
            "10m",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(
        base_url=apiserver.url, verify=apiserver.ssl_context(), headers=headers, timeout=30
    ) as http:
        name = f"node-csr-{uuid.uuid4().hex[:6]}"
        r = http.post(
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            json=csr_manifest(name, "system:node:vm8"),
        )
        assert r.status_code == 201, r.text
        spec = r.json()["spec"]
        assert spec["username"] == f"system:bootstrap:{token.split('.')[0]}"
        assert "system:bootstrappers" in spec["groups"]
        assert http.get("/api/v1/namespaces/default/pods").status_code == 403
        assert http.get("/api/v1/namespaces/kube-system/secrets").status_code == 403
        approve = http.put(
            f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval",
            json={**r.json(), "status": {"conditions": [{"type": "Approved", "status": "True"}]}},
        )
        assert approve.status_code == 403  # it cannot approve its own request
    token_id = token.split(".")[0]
    apiserver.kubectl("delete", "secret", "-n", "kube-system", f"bootstrap-token-{token_id}")
    with httpx.Client(
        base_url=apiserver.url, verify=apiserver.ssl_context(), headers=headers, timeout=30
    ) as http:
        r = http.get("/apis/certificates.k8s.io/v1/certificatesigningrequests")
        assert r.status_code == 401  # a deleted token stops at once


def test_anyone_may_read_cluster_info_and_only_that(apiserver: Any) -> None:
    with httpx.Client(base_url=apiserver.url, verify=apiserver.ssl_context(), timeout=30) as http:
        assert http.get("/api/v1/namespaces/kube-public/configmaps/cluster-info").status_code in (
            200,
            404,
        )
        assert http.get("/api/v1/namespaces/kube-public/configmaps").status_code == 401
        assert (
            http.delete("/api/v1/namespaces/kube-public/configmaps/cluster-info").status_code == 401
        )
