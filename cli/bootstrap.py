"""Bootstrap tokens and discovery, as kubeadm defines them (pure; table-tested).

- A bootstrap token is `<id>.<secret>` (6 and 16 characters of [a-z0-9]),
  stored as the Secret `bootstrap-token-<id>` in `kube-system` with type
  `bootstrap.kubernetes.io/token` and the fields Kubernetes reads
  (`token-id`, `token-secret`, `expiration`, `usage-bootstrap-*`,
  `auth-extra-groups`).
- Discovery: the ConfigMap `cluster-info` in `kube-public` holds a kubeconfig
  with the server and the CA, and one detached JWS per signing token
  (`jws-kubeconfig-<id>`, HS256 keyed by the token secret). A joining node
  that knows the token checks the signature (the server knows the token) and
  the CA against `--discovery-token-ca-cert-hash sha256:<hex>`, the SHA-256 of
  the CA's SubjectPublicKeyInfo (so it trusts the right cluster).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import secrets
import string
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
ALPHABET = string.ascii_lowercase + string.digits


class TokenError(ValueError):
    """A token, hash or signature that does not check out; the message says how."""


def generate_token() -> str:
    pick = lambda n: "".join(secrets.choice(ALPHABET) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def parse_token(token: str) -> tuple[str, str]:
    m = TOKEN_RE.match(token)
    if not m:
        raise TokenError(
            f"the token {token[:7]!r}... does not have the form [a-z0-9]{{6}}.[a-z0-9]{{16}}"
        )
    return m.group(1), m.group(2)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret(
    token: str,
    *,
    ttl: datetime.timedelta | None,
    now: datetime.datetime,
    description: str = "",
    groups: tuple[str, ...] = (DEFAULT_GROUP,),
) -> dict[str, Any]:
    """The Secret Kubernetes stores a bootstrap token in. Pure."""
    token_id, secret = parse_token(token)
    data = {
        "token-id": token_id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": ",".join(groups),
    }
    if ttl is not None:
        data["expiration"] = (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    if description:
        data["description"] = description
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": SECRET_TYPE,
        "data": {k: _b64(v) for k, v in data.items()},
    }


def secret_fields(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def expired(fields: dict[str, str], now: datetime.datetime) -> bool:
    exp = fields.get("expiration")
    if not exp:
        return False
    when = datetime.datetime.strptime(exp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return when <= now


def parse_ttl(text: str) -> datetime.timedelta | None:
    """`24h`, `30m`, `90s`, `1h30m`; `0` means never expires (as kubeadm)."""
    if text in ("0", "0s"):
        return None
    parts = re.findall(r"(\d+)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise TokenError(f"--ttl {text!r}: use a duration like 24h, 30m or 1h30m (0: never)")
    seconds = sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    return datetime.timedelta(seconds=seconds)


# -- discovery -------------------------------------------------------------------------------


def ca_cert_hash(ca_pem: bytes) -> str:
    """`sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo (kubeadm's pin)."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_kubeconfig(kubeconfig: str, token: str) -> str:
    """The detached JWS the bootstrap signer puts beside cluster-info's kubeconfig."""
    token_id, secret = parse_token(token)
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(kubeconfig.encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}..{_b64url(sig)}"


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig published in cluster-info: where the server is and its CA, no user."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "contexts": [],
        "current-context": "",
        "preferences": {},
        "users": [],
    }
    return json.dumps(config, indent=2, sort_keys=True)


def verify_cluster_info(
    cluster_info: dict[str, Any], token: str, ca_hash: str
) -> tuple[str, bytes]:
    """(server, CA PEM) from cluster-info, once its signature and CA pin both check out."""
    token_id, _ = parse_token(token)
    data = cluster_info.get("data") or {}
    kubeconfig = data.get("kubeconfig", "")
    signature = data.get(f"jws-kubeconfig-{token_id}")
    if not kubeconfig:
        raise TokenError("cluster-info has no kubeconfig")
    if not signature:
        raise TokenError(
            f"there is no JWS signed token in the cluster-info ConfigMap for token ID "
            f"{token_id!r}: the token is unknown or expired (`skiff token create` makes one)"
        )
    if not hmac.compare_digest(signature, sign_kubeconfig(kubeconfig, token)):
        raise TokenError("cluster-info's signature does not match the token: wrong token secret")
    cluster = json.loads(kubeconfig)["clusters"][0]["cluster"]
    ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    got = ca_cert_hash(ca_pem)
    want = ca_hash.lower()
    if not want.startswith("sha256:") or len(want) != 7 + 64:
        raise TokenError(f"--discovery-token-ca-cert-hash {ca_hash!r}: expected sha256:<64 hex>")
    if not hmac.compare_digest(got, want):
        raise TokenError(
            f"the cluster CA's public key hash is {got}, not {want}: refusing to trust this server"
        )
    return str(cluster["server"]), ca_pem
