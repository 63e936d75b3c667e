"""Projected service-account tokens: asked for by TokenRequest, refreshed before expiry.

As the kubelet's token manager does, a pod's token is requested bound to the
pod (`boundObjectRef`), for the audience and lifetime its projected
`serviceAccountToken` source names, and requested again once it is older than
80% of its lifetime (or 24 hours), so the file in the pod is always valid.
Tokens are cached per (pod, account, audience, lifetime) and forgotten with the pod.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# (namespace, account, audiences, expirationSeconds, pod) -> (token, expiry as epoch seconds)
RequestToken = Callable[[str, str, list[str], int, dict[str, Any]], tuple[str, float]]
MAX_AGE = 24 * 3600.0


@dataclass(frozen=True)
class Issued:
    token: str
    issued: float
    expires: float


def needs_refresh(token: Issued, now: float) -> bool:
    """Kubernetes' requiresRefresh: past 80% of its life, or older than 24 h."""
    ttl = token.expires - token.issued
    return now > token.issued + 0.8 * ttl or now > token.issued + MAX_AGE


class TokenManager:
    def __init__(self, request: RequestToken, clock: Callable[[], float] = time.time) -> None:
        self.request = request
        self.clock = clock
        self._tokens: dict[tuple[str, str, str, tuple[str, ...], int], Issued] = {}
        self._lock = threading.Lock()

    def token(self, pod: dict[str, Any], account: str, audience: str, expiration: int) -> str:
        meta = pod.get("metadata") or {}
        audiences = [audience] if audience else []
        key = (
            str(meta.get("uid", "")),
            meta.get("namespace", ""),
            account,
            tuple(audiences),
            expiration,
        )
        now = self.clock()
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and not needs_refresh(cached, now):
            return cached.token
        token, expires = self.request(
            meta.get("namespace", ""), account, audiences, expiration, pod
        )
        with self._lock:
            self._tokens[key] = Issued(token, now, expires)
        return token

    def forget(self, pod_uid: str) -> None:
        with self._lock:
            for key in [k for k in self._tokens if k[0] == pod_uid]:
                del self._tokens[key]
