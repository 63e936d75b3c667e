"""Service-account tokens: signed, audience-bound JWTs with an expiry.

As kube-apiserver does with `--service-account-signing-key-file`, skiff signs
tokens with an RSA key of its own (`pki/sa.key`, RS256) and accepts as bearer
tokens those it signed, for its audience, unexpired, whose ServiceAccount (and
bound Pod, if any) still exists with the same uid. The claims are Kubernetes':

    iss  https://kubernetes.default.svc.cluster.local
    sub  system:serviceaccount:<namespace>:<name>
    aud  ["https://kubernetes.default.svc.cluster.local"] (or what was asked for)
    exp, iat, nbf, jti
    kubernetes.io: {namespace, serviceaccount: {name, uid}, pod: {name, uid}}

TokenRequest (`POST .../serviceaccounts/<name>/token`, what `kubectl create
token` and the kubelet call) issues them; TokenReview checks them.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .auth import UserInfo

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 2**32  # Kubernetes' limit: 2^32 seconds
SA_PREFIX = "system:serviceaccount:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ensure_signing_key(pki: Path) -> rsa.RSAPrivateKey:
    """pki/sa.key (and sa.pub), made once, as kubeadm makes them."""
    path = pki / "sa.key"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    (pki / "sa.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(
        f"{SA_PREFIX}{namespace}:{name}",
        uid,
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


class TokenIssuer:
    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        *,
        lookup: Callable[[str, str, str], dict[str, Any] | None] | None = None,
        audiences: tuple[str, ...] = (ISSUER,),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.public = key.public_key()
        self.kid = _b64(_key_id(self.public))
        self.lookup = lookup  # (resource, namespace, name) -> the live object, or None
        self.audiences = audiences
        self.clock = clock

    def issue(
        self,
        account: dict[str, Any],
        *,
        audiences: list[str] | None = None,
        expiration: int = DEFAULT_EXPIRATION,
        pod: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        """A signed token for `account` and its expiry (epoch seconds)."""
        meta = account["metadata"]
        now = int(self.clock())
        exp = now + expiration
        private: dict[str, Any] = {
            "namespace": meta["namespace"],
            "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")},
        }
        if pod is not None:
            private["pod"] = {
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"].get("uid", ""),
            }
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                private["node"] = {"name": node}
        claims = {
            "aud": list(audiences or self.audiences),
            "exp": exp,
            "iat": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": now,
            "sub": f"{SA_PREFIX}{meta['namespace']}:{meta['name']}",
        }
        header = {"alg": "RS256", "kid": self.kid}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature), exp

    def claims(self, token: str) -> dict[str, Any] | None:
        """The verified claims of a token this server signed, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            if not isinstance(header, dict) or header.get("alg") != "RS256":
                return None
            self.public.verify(
                _unb64(parts[2]),
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, InvalidSignature, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            return None
        now = self.clock()
        try:
            if now >= float(claims["exp"]) or now + 60 < float(claims.get("nbf", 0)):
                return None
        except (KeyError, TypeError, ValueError):
            return None
        return claims

    def authenticate(
        self, token: str, audiences: list[str] | None = None
    ) -> tuple[UserInfo, list[str]] | None:
        """Whose token this is, for which of the wanted audiences; None if invalid."""
        claims = self.claims(token)
        if claims is None:
            return None
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else list(aud or [])
        wanted = list(audiences or self.audiences)
        matched = [a for a in wanted if a in token_auds]
        if not matched:
            return None
        private = claims.get("kubernetes.io") or {}
        namespace = str(private.get("namespace", ""))
        sa = private.get("serviceaccount") or {}
        if not namespace or not sa.get("name"):
            return None
        if self.lookup is not None:
            live = self.lookup("serviceaccounts", namespace, sa["name"])
            if live is None or live["metadata"].get("uid") != sa.get("uid"):
                return None  # the account was deleted (or deleted and made again)
            pod = private.get("pod")
            if pod:
                live_pod = self.lookup("pods", namespace, pod.get("name", ""))
                if live_pod is None or live_pod["metadata"].get("uid") != pod.get("uid"):
                    return None  # a bound token dies with its pod
        return service_account_user(namespace, sa["name"], str(sa.get("uid", ""))), matched


def _key_id(public: rsa.RSAPublicKey) -> bytes:
    """Kubernetes' key id: the SHA-256 of the DER public key."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize()


def expiry_timestamp(exp: int) -> str:
    return datetime.datetime.fromtimestamp(exp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the ServiceAccount admission plugin ---------------------------------------------

TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_EXPIRATION = 3607  # what Kubernetes puts in the projected source
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def token_volume(suffix: str) -> dict[str, Any]:
    """The projected volume Kubernetes gives every pod: token, ca.crt, namespace."""
    return {
        "name": f"kube-api-access-{suffix}",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def admit_pod(pod: dict[str, Any], account: dict[str, Any] | None, suffix: str) -> None:
    """The ServiceAccount admission plugin's change to a new pod (in place).

    Names the account (`default` unless given) and, unless automounting is off
    on the pod or (when the pod is silent) on the account, adds the projected
    token volume and mounts it in every container that does not mount
    something there already.
    """
    spec = pod.setdefault("spec", {})
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = name
    spec["serviceAccount"] = name
    if account is None:
        return
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account.get("automountServiceAccountToken")
    if automount is False:
        return
    volumes = spec.setdefault("volumes", [])
    if not isinstance(volumes, list) or any(
        isinstance(v, dict) and str(v.get("name", "")).startswith("kube-api-access-")
        for v in volumes
    ):
        return  # malformed (validation will say so) or already there
    volume = token_volume(suffix)
    volumes.append(volume)
    for key in ("initContainers", "containers"):
        containers = spec.get(key) or []
        for c in containers if isinstance(containers, list) else []:
            if not isinstance(c, dict) or not isinstance(c.setdefault("volumeMounts", []), list):
                continue
            mounts = c["volumeMounts"]
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": volume["name"], "mountPath": TOKEN_MOUNT_PATH, "readOnly": True})


def random_suffix() -> str:
    return "".join(_NAME_CHARS[b % len(_NAME_CHARS)] for b in os.urandom(5))
