"""Which CSRs are approved on their own, and the certificate the signer issues."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controllers.certificates import KUBELET_CLIENT, approval, issue

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def request(cn: str = "system:node:vm2", org: str = "system:nodes") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        names.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(names))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def csr(
    *,
    req: str | None = None,
    signer: str = KUBELET_CLIENT,
    usages: tuple[str, ...] = ("digital signature", "client auth"),
    user: str = "system:bootstrap:abcdef",
    groups: tuple[str, ...] = ("system:bootstrappers", "system:authenticated"),
    conditions: list | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "node-csr-1"},
        "spec": {
            "request": req or request(),
            "signerName": signer,
            "usages": list(usages),
            "username": user,
            "groups": list(groups),
        },
        "status": {"conditions": conditions or []},
    }


@pytest.mark.parametrize(
    ("c", "ok"),
    [
        (csr(), True),
        (csr(user="system:node:vm2", groups=("system:nodes",)), True),  # a renewal
        (csr(user="jane", groups=("developers",)), False),
        (csr(req=request(cn="system:node:vm2", org="system:masters")), False),
        (csr(req=request(cn="admin")), False),
        (csr(signer="kubernetes.io/kube-apiserver-client"), False),
        (csr(usages=("digital signature", "server auth")), False),
        (csr(conditions=[{"type": "Denied", "status": "True"}]), False),
        (csr(conditions=[{"type": "Approved", "status": "True"}]), False),
        (csr(req=base64.b64encode(b"junk").decode()), False),
    ],
)
def test_approval(c: dict, ok: bool) -> None:
    assert approval(c)[0] is ok


def test_issued_certificate_is_a_client_certificate_from_the_ca() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skiff-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = issue(csr(), ca, ca_key, NOW)
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:vm2"
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_after_utc - NOW == datetime.timedelta(days=365)
