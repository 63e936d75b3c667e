"""The kubelet's side: which node subresource a request is, the review's cache,
and when a projected token is asked for again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubelet.authz import Caller, WebhookAuthorizer, attributes
from kubelet.tokens import Issued, TokenManager, needs_refresh


@pytest.mark.parametrize(
    ("method", "path", "ws", "want"),
    [
        ("GET", "/stats/summary", False, ("get", "stats")),
        ("GET", "/metrics", False, ("get", "metrics")),
        ("GET", "/metrics/cadvisor", False, ("get", "metrics")),
        ("GET", "/logs/messages", False, ("get", "log")),
        ("GET", "/pods", False, ("get", "pods")),
        ("GET", "/healthz", False, ("get", "healthz")),
        ("GET", "/containerLogs/ns/p/c", False, ("get", "proxy")),
        ("GET", "/exec/ns/p/c", True, ("create", "proxy")),
        ("POST", "/exec/ns/p/c", False, ("create", "proxy")),
        ("GET", "/portForward/ns/p", True, ("create", "proxy")),
    ],
)
def test_request_to_node_subresource(method: str, path: str, ws: bool, want: tuple) -> None:
    assert attributes(method, path, ws) == want


def test_reviews_are_cached_allowed_longer_than_denied() -> None:
    now = [0.0]
    asked: list[dict[str, Any]] = []
    answer = {"allowed": False}

    async def post(review: dict[str, Any]) -> dict[str, Any]:
        asked.append(review)
        return {"status": dict(answer)}

    authz = WebhookAuthorizer("n1", post, clock=lambda: now[0])
    who = Caller("alice", ("g",))

    def ask() -> bool:
        return asyncio.run(authz.allowed(who, "get", "stats"))[0]

    assert ask() is False
    spec = asked[0]["spec"]
    assert spec["user"] == "alice" and spec["groups"] == ["g"]
    assert spec["resourceAttributes"] == {
        "verb": "get",
        "resource": "nodes",
        "subresource": "stats",
        "name": "n1",
        "version": "v1",
    }
    answer["allowed"] = True
    now[0] = 29
    assert ask() is False and len(asked) == 1  # denial cached 30 s
    now[0] = 31
    assert ask() is True and len(asked) == 2
    now[0] = 31 + 299
    answer["allowed"] = False
    assert ask() is True and len(asked) == 2  # allowed cached 5 minutes


def test_token_refreshed_after_80_percent_of_its_life() -> None:
    assert not needs_refresh(Issued("t", 0, 1000), 799)
    assert needs_refresh(Issued("t", 0, 1000), 801)
    assert needs_refresh(Issued("t", 0, 10 * 24 * 3600), 24 * 3600 + 1)
    now = [0.0]
    calls: list[tuple] = []

    def request(ns: str, sa: str, auds: list[str], exp: int, pod: dict) -> tuple[str, float]:
        calls.append((ns, sa, tuple(auds), exp))
        return f"token-{len(calls)}", now[0] + exp

    tokens = TokenManager(request, clock=lambda: now[0])
    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"}}
    assert tokens.token(pod, "default", "", 3600) == "token-1"
    now[0] = 2000
    assert tokens.token(pod, "default", "", 3600) == "token-1"
    now[0] = 3000
    assert tokens.token(pod, "default", "", 3600) == "token-2"
    assert tokens.token(pod, "default", "vault", 3600) == "token-3"
    assert calls[-1] == ("ns", "default", ("vault",), 3600)
    tokens.forget("u")
    assert tokens.token(pod, "default", "", 3600) == "token-4"
