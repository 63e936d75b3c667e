"""Bootstrap tokens and discovery as kubeadm defines them: format, Secret, CA pin, JWS."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cli import bootstrap

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
TOKEN = "abcdef.0123456789abcdef"


def make_ca(name: str = "skiff-ca") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_generated_tokens_have_kubeadms_form() -> None:
    for _ in range(20):
        token_id, secret = bootstrap.parse_token(bootstrap.generate_token())
        assert len(token_id) == 6 and len(secret) == 16


@pytest.mark.parametrize(
    "bad",
    [
        "abcdef0123456789abcdef",
        "ABCDEF.0123456789abcdef",
        "abcde.0123456789abcdef",
        "abcdef.0123456789abcde",
        "",
    ],
)
def test_malformed_tokens_are_refused(bad: str) -> None:
    with pytest.raises(bootstrap.TokenError):
        bootstrap.parse_token(bad)


def test_secret_is_stored_as_kubernetes_stores_it() -> None:
    s = bootstrap.token_secret(TOKEN, ttl=datetime.timedelta(hours=24), now=NOW, description="x")
    assert s["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert s["type"] == "bootstrap.kubernetes.io/token"
    f = bootstrap.secret_fields(s)
    assert f["token-id"] == "abcdef" and f["token-secret"] == "0123456789abcdef"
    assert f["expiration"] == "2026-01-02T12:00:00Z"
    assert f["usage-bootstrap-authentication"] == f["usage-bootstrap-signing"] == "true"
    assert f["auth-extra-groups"] == "system:bootstrappers:kubeadm:default-node-token"
    assert not bootstrap.expired(f, NOW)
    assert bootstrap.expired(f, NOW + datetime.timedelta(hours=24))
    forever = bootstrap.token_secret(TOKEN, ttl=None, now=NOW)
    assert "expiration" not in bootstrap.secret_fields(forever)


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("0", None)]
)
def test_ttl(text: str, seconds: int | None) -> None:
    ttl = bootstrap.parse_ttl(text)
    assert (ttl.total_seconds() if ttl else None) == seconds


@pytest.mark.parametrize("bad", ["1d", "h", "10", "-1h", "1h 2m"])
def test_bad_ttl(bad: str) -> None:
    with pytest.raises(bootstrap.TokenError):
        bootstrap.parse_ttl(bad)


def test_ca_hash_is_sha256_of_the_public_key_info() -> None:
    ca = make_ca()
    h = bootstrap.ca_cert_hash(ca)
    assert h.startswith("sha256:") and len(h) == 71
    assert h == bootstrap.ca_cert_hash(ca)
    assert h != bootstrap.ca_cert_hash(make_ca())  # another key, another pin


def cluster_info(ca: bytes, signer: str = TOKEN) -> dict:
    kubeconfig = bootstrap.cluster_info_kubeconfig("https://172.30.0.11:6443", ca)
    token_id = signer.split(".")[0]
    return {
        "data": {
            "kubeconfig": kubeconfig,
            f"jws-kubeconfig-{token_id}": bootstrap.sign_kubeconfig(kubeconfig, signer),
        }
    }


def test_signed_cluster_info_with_the_right_pin_is_trusted() -> None:
    ca = make_ca()
    server, got = bootstrap.verify_cluster_info(cluster_info(ca), TOKEN, bootstrap.ca_cert_hash(ca))
    assert server == "https://172.30.0.11:6443" and got == ca


def test_jws_is_a_detached_hs256_with_the_token_id() -> None:
    header, payload, sig = bootstrap.sign_kubeconfig("{}", TOKEN).split(".")
    assert payload == ""
    padded = header + "=" * (-len(header) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {"alg": "HS256", "kid": "abcdef"}
    assert sig


def test_wrong_pin_is_refused() -> None:
    ca, other = make_ca(), make_ca()
    with pytest.raises(bootstrap.TokenError, match="refusing to trust"):
        bootstrap.verify_cluster_info(cluster_info(ca), TOKEN, bootstrap.ca_cert_hash(other))


def test_wrong_secret_or_unknown_token_is_refused() -> None:
    ca = make_ca()
    pin = bootstrap.ca_cert_hash(ca)
    with pytest.raises(bootstrap.TokenError, match="does not match"):
        bootstrap.verify_cluster_info(cluster_info(ca), "abcdef.ffffffffffffffff", pin)
    with pytest.raises(bootstrap.TokenError, match="no JWS"):
        bootstrap.verify_cluster_info(cluster_info(ca), "zzzzzz.0123456789abcdef", pin)


def test_tampered_kubeconfig_is_refused() -> None:
    ca = make_ca()
    info = cluster_info(ca)
    info["data"]["kubeconfig"] = info["data"]["kubeconfig"].replace("172.30.0.11", "172.30.0.66")
    with pytest.raises(bootstrap.TokenError, match="does not match"):
        bootstrap.verify_cluster_info(info, TOKEN, bootstrap.ca_cert_hash(ca))
