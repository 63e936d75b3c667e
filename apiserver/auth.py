"""Authentication: who is asking — from a bearer token or a client certificate.

As in kube-apiserver, authentication only establishes a `UserInfo` (name,
uid, groups); every request carries it onward so authorization can decide on
it. Tokens come from a static token file in Kubernetes' CSV format
(`token,user,uid,"group1,group2"`); client certificates are verified against
the cluster CA by `tls.ClientCertProtocol` (an unverified one never gets
here), and their CN is the user and each O a group.
"""

from __future__ import annotations

import csv
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

ANONYMOUS = "system:anonymous"
# Paths any client may read without credentials, as kube-apiserver's
# system:public-info-viewer role allows.
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default=())

    @property
    def authenticated(self) -> bool:
        return self.name != ANONYMOUS


@dataclass(frozen=True)
class TokenEntry:
    token: str
    user: UserInfo


def load_token_file(path: Path) -> list[TokenEntry]:
    entries = []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}: a token line needs token,user,uid[,groups]: {row!r}")
            groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g)
            entries.append(TokenEntry(row[0], UserInfo(row[1], row[2], groups)))
    return entries


def write_token_file(path: Path, entries: list[TokenEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        for e in entries:
            writer.writerow([e.token, e.user.name, e.user.uid, ",".join(e.user.groups)])
    path.chmod(0o600)


class Authenticator:
    def __init__(self, tokens: list[TokenEntry]) -> None:
        self._tokens = tokens
        # More bearer-token authenticators (service-account JWTs, serviceaccounts.py),
        # each (token, audiences) -> (user, audiences) or None.
        self.token_authenticators: list[
            Callable[[str, list[str] | None], tuple[UserInfo, list[str]] | None]
        ] = []

    def from_token(self, token: str) -> UserInfo | None:
        user = self._static(token)
        if user is not None:
            return user
        for authenticate in self.token_authenticators:
            found = authenticate(token, None)
            if found is not None:
                return found[0]
        return None

    def _static(self, token: str) -> UserInfo | None:
        for entry in self._tokens:
            # Constant-time comparison: a token check must not leak prefixes.
            if hmac.compare_digest(entry.token.encode(), token.encode()):
                return UserInfo(
                    entry.user.name, entry.user.uid, (*entry.user.groups, "system:authenticated")
                )
        return None

    @staticmethod
    def from_certificate(der: bytes) -> UserInfo:
        cert = x509.load_der_x509_certificate(der)
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        name = str(cn[0].value) if cn else ""
        return UserInfo(name, "", (*(str(o.value) for o in orgs), "system:authenticated"))

    def review_token(self, token: str, audiences: list[str]) -> tuple[UserInfo, list[str]] | None:
        """A TokenReview's answer: whose token this is, and for which audiences."""
        for authenticate in self.token_authenticators:
            found = authenticate(token, audiences or None)
            if found is not None:
                return found
        user = self._static(token)
        return (user, list(audiences)) if user is not None else None

    def authenticate(self, authorization: str | None, peer_cert: bytes | None) -> UserInfo | None:
        """The user, or None when credentials were given and are wrong.

        No credentials at all gives the anonymous user; the caller decides what
        anonymous may see.
        """
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return None
            return self.from_token(value.strip())
        if peer_cert:
            return self.from_certificate(peer_cert)
        return UserInfo(ANONYMOUS, "", ("system:unauthenticated",))
