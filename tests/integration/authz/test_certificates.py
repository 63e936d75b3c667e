"""CertificateSigningRequests: a kubelet's client certificate asked for, approved
with `kubectl certificate approve`, signed by the cluster CA, and usable."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import Users, eventually

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


def request(cn: str, orgs: list[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    names.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(names))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return csr.public_bytes(serialization.Encoding.PEM), pem_key


def csr_body(name: str, pem: bytes, signer: str) -> dict[str, Any]:
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "signerName": signer,
            "usages": ["digital signature", "client auth"],
            "username": "someone-else",
        },
    }


def test_kubelet_client_certificate_by_csr(
    apiserver: Any,
    api: httpx.Client,
    users: Users,
    unique: str,
    tmp_path: Path,
    kubectl_binary: str,
) -> None:
    node = f"csr-node-{unique}"
    pem, key = request(f"system:node:{node}", ["system:nodes"])
    asker = users.client(f"bootstrapper-{unique}")
    # Asking needs create on certificatesigningrequests; the admin grants it.
    assert (
        asker.post(
            CSRS, json=csr_body(f"a-{unique}", pem, "kubernetes.io/kube-apiserver-client-kubelet")
        ).status_code
        == 403
    )
    role = {
        "metadata": {"name": f"csr-create-{unique}"},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests"],
                "verbs": ["create", "get"],
            }
        ],
    }
    assert api.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", json=role).status_code == 201
    binding = {
        "metadata": {"name": f"csr-create-{unique}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": f"csr-create-{unique}",
        },
        "subjects": [
            {
                "kind": "User",
                "name": f"bootstrapper-{unique}",
                "apiGroup": "rbac.authorization.k8s.io",
            }
        ],
    }
    assert (
        api.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=binding).status_code
        == 201
    )
    name = f"node-{unique}"
    made = eventually(
        lambda: (
            (
                r := asker.post(
                    CSRS, json=csr_body(name, pem, "kubernetes.io/kube-apiserver-client-kubelet")
                )
            ).status_code
            == 201
            and r.json()
        ),
        what="create allowed",
    )
    assert made["spec"]["username"] == f"bootstrapper-{unique}"  # not what the body claimed
    assert "system:authenticated" in made["spec"]["groups"]
    # The requester may not approve its own request.
    approval = {
        **made,
        "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Self"}]},
    }
    assert asker.put(f"{CSRS}/{name}/approval", json=approval).status_code == 403
    shown = subprocess.run(
        [kubectl_binary, "--kubeconfig", str(apiserver.kubeconfig), "get", "csr", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Pending" in shown.stdout, shown.stdout + shown.stderr
    done = subprocess.run(
        [kubectl_binary, "--kubeconfig", str(apiserver.kubeconfig), "certificate", "approve", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    signed = eventually(
        lambda: api.get(f"{CSRS}/{name}").json()["status"].get("certificate"), what="cert"
    )
    cert = x509.load_pem_x509_certificate(base64.b64decode(signed))
    assert (
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"system:node:{node}"
    )
    ca = x509.load_pem_x509_certificate(apiserver.ca.read_bytes())
    assert cert.issuer == ca.subject
    # The certificate works: the node is system:node:<node>.
    (tmp_path / "n.crt").write_bytes(base64.b64decode(signed))
    (tmp_path / "n.key").write_bytes(key)
    context = apiserver.ssl_context()
    context.load_cert_chain(str(tmp_path / "n.crt"), str(tmp_path / "n.key"))
    with httpx.Client(base_url=apiserver.url, verify=context) as client:
        who = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}).json()
    assert who["status"]["userInfo"]["username"] == f"system:node:{node}"
    listed = subprocess.run(
        [
            kubectl_binary,
            "--kubeconfig",
            str(apiserver.kubeconfig),
            "get",
            "csr",
            name,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    conditions = json.loads(listed.stdout)["status"]["conditions"]
    assert [c["type"] for c in conditions] == ["Approved"]


def test_signer_refuses_what_it_must_not_sign(api: httpx.Client, unique: str) -> None:
    for i, (cn, orgs, signer) in enumerate(
        [
            ("alice", ["system:nodes"], "kubernetes.io/kube-apiserver-client-kubelet"),
            ("system:node:x", ["other"], "kubernetes.io/kube-apiserver-client-kubelet"),
            ("mallory", ["system:masters"], "kubernetes.io/kube-apiserver-client"),
        ]
    ):
        pem, _ = request(cn, orgs)
        name = f"bad-{i}-{unique}"
        assert api.post(CSRS, json=csr_body(name, pem, signer)).status_code == 201
        current = api.get(f"{CSRS}/{name}").json()
        current["status"] = {
            "conditions": [{"type": "Approved", "status": "True", "reason": "Test"}]
        }
        r = api.put(f"{CSRS}/{name}/approval", json=current)
        assert r.status_code == 200, r.text
        status = api.get(f"{CSRS}/{name}").json()["status"]
        assert "certificate" not in status
        failed = [c for c in status["conditions"] if c["type"] == "Failed"]
        assert failed and failed[0]["reason"] == "SignerValidationFailure", status
    r = api.post(
        CSRS,
        json={
            "metadata": {"name": f"junk-{unique}"},
            "spec": {
                "request": "bm90IGEgY3Ny",
                "signerName": "kubernetes.io/kube-apiserver-client",
            },
        },
    )
    assert r.status_code == 422
