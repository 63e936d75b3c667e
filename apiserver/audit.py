"""The audit log: who did what, when, and what came of it — as kube-apiserver writes it.

With `--audit-policy-file` and `--audit-log-path`, every request is matched
against the policy's rules (first match wins) and logged at that rule's level,
one `audit.k8s.io/v1` Event per JSON line:

    None             not logged
    Metadata         user, verb, resource, response code, timestamps, decision
    Request          ... and the request body
    RequestResponse  ... and the response body

Rules select by `users`, `userGroups`, `verbs`, `resources` (group, resources,
resourceNames), `namespaces` and `nonResourceURLs`; `omitStages` drops stages
(`RequestReceived`, `ResponseStarted`, `ResponseComplete`). Secrets, TokenRequests
and TokenReviews are never logged above Metadata, whatever the policy says,
so no secret value or token ever reaches the log. The file rotates by size
(`--audit-log-maxsize` MB, `--audit-log-maxbackup` old files kept).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import UserInfo
from .authz.attributes import Attributes, from_request

log = logging.getLogger("skiff.apiserver.audit")

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
BODY_LIMIT = 1 << 20  # bodies larger than this are not copied into the log
# (group, resource/subresource) never logged above Metadata: their bodies are secrets.
SENSITIVE = frozenset(
    {
        ("", "secrets"),
        ("", "serviceaccounts/token"),
        ("authentication.k8s.io", "tokenreviews"),
        ("authentication.k8s.io", "tokenrequests"),
    }
)


class PolicyError(ValueError):
    """The policy file is not a valid audit.k8s.io/v1 Policy."""


@dataclass(frozen=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[dict[str, Any], ...] = ()
    namespaces: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    omit: frozenset[str] = frozenset()

    def matches(self, user: UserInfo, attrs: Attributes) -> bool:
        if self.users and user.name not in self.users:
            return False
        if self.groups and not set(self.groups) & set(user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.urls:
            if attrs.resource_request:
                return False
            return any(
                u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1]))
                for u in self.urls
            )
        if (self.resources or self.namespaces) and not attrs.resource_request:
            return False
        if self.namespaces and attrs.namespace not in self.namespaces:
            return False
        if self.resources:
            if not attrs.resource_request:
                return False
            return any(_kind_matches(k, attrs) for k in self.resources)
        return True


def _kind_matches(kind: dict[str, Any], attrs: Attributes) -> bool:
    if kind.get("group", "") != attrs.api_group and kind.get("group") != "*":
        return False
    resources = kind.get("resources") or []
    if resources:
        combined = attrs.resource_and_sub
        ok = False
        for r in resources:
            if r in ("*", combined) or (r == attrs.resource and not attrs.subresource):
                ok = True
            elif r.endswith("/*") and r[:-2] == attrs.resource:
                ok = True
            elif r.startswith("*/") and r[2:] == attrs.subresource:
                ok = True
        if not ok:
            return False
    names = kind.get("resourceNames") or []
    return not names or attrs.name in names


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    omit: frozenset[str] = frozenset()

    def decide(self, user: UserInfo, attrs: Attributes) -> tuple[str, frozenset[str]]:
        """(level, stages to omit) for a request; Metadata at most for secrets."""
        for rule in self.rules:
            if rule.matches(user, attrs):
                level = rule.level
                if (attrs.api_group, attrs.resource_and_sub) in SENSITIVE or (
                    attrs.api_group,
                    attrs.resource,
                ) in SENSITIVE:
                    level = "Metadata" if level != "None" else level
                return level, self.omit | rule.omit
        return "None", self.omit


def load_policy(text: str) -> Policy:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"audit policy is not YAML: {e}") from e
    if not isinstance(doc, dict) or doc.get("kind") != "Policy":
        raise PolicyError("audit policy must be kind: Policy (apiVersion: audit.k8s.io/v1)")
    if doc.get("apiVersion") not in ("audit.k8s.io/v1", "audit.k8s.io/v1beta1"):
        raise PolicyError(
            f"audit policy apiVersion {doc.get('apiVersion')!r} is not audit.k8s.io/v1"
        )

    def stages(values: Any, where: str) -> frozenset[str]:
        out = frozenset(values or [])
        bad = out - set(STAGES)
        if bad:
            raise PolicyError(f"{where}: unknown stage {sorted(bad)[0]!r}")
        return out

    rules = []
    for i, r in enumerate(doc.get("rules") or []):
        if not isinstance(r, dict) or r.get("level") not in LEVELS:
            raise PolicyError(f"rules[{i}].level must be one of {', '.join(LEVELS)}")
        if r.get("nonResourceURLs") and (r.get("resources") or r.get("namespaces")):
            raise PolicyError(
                f"rules[{i}]: rules cannot apply to both resources and nonResourceURLs"
            )
        rules.append(
            Rule(
                level=r["level"],
                users=tuple(r.get("users") or ()),
                groups=tuple(r.get("userGroups") or ()),
                verbs=tuple(r.get("verbs") or ()),
                resources=tuple(r.get("resources") or ()),
                namespaces=tuple(r.get("namespaces") or ()),
                urls=tuple(r.get("nonResourceURLs") or ()),
                omit=stages(r.get("omitStages"), f"rules[{i}].omitStages"),
            )
        )
    return Policy(tuple(rules), stages(doc.get("omitStages"), "omitStages"))


class RotatingWriter:
    """JSON lines to `path`; at `max_bytes` the file becomes path.1 (path.2, ...).

    Each line is one write(2) on a descriptor opened with O_APPEND, so the
    lines of several worker processes sharing the file never interleave. With
    `rotates=False` (a worker of several, workers.py) this writer never
    rotates: the parent does (`rotate_if_full`), and a writer that finds the
    path naming another file than its own reopens it before its next line.
    A line written between the parent's rename and that check lands at the
    end of path.1: late by one rotation, never lost.
    """

    def __init__(
        self, path: Path, max_bytes: int = 100 << 20, backups: int = 5, rotates: bool = True
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.rotates = rotates
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, event: dict[str, Any]) -> None:
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self.rotates:
                size = os.fstat(self._fd).st_size
                if self.max_bytes and size and size + len(line) > self.max_bytes:
                    os.close(self._fd)
                    rotate(self.path, self.backups)
                    self._fd = self._open()
            else:
                self._follow_rotation()
            os.write(self._fd, line)

    def _follow_rotation(self) -> None:
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = -1
        if current != os.fstat(self._fd).st_ino:
            os.close(self._fd)
            self._fd = self._open()

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def rotate(path: Path, backups: int) -> None:
    """path -> path.1 -> ... -> path.`backups` (the oldest is dropped)."""
    for i in range(backups, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        newer = path.with_name(f"{path.name}.{i - 1}") if i > 1 else path
        if i == backups and older.exists():
            older.unlink()
        if newer.exists():
            newer.rename(older)
    if backups == 0:
        path.unlink(missing_ok=True)


def rotate_if_full(path: Path, max_bytes: int, backups: int) -> bool:
    """The parent's side of rotation under several workers: rotate once full."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if not max_bytes or size < max_bytes:
        return False
    rotate(path, backups)
    return True


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _user(user: UserInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        out["uid"] = user.uid
    return out


@dataclass
class _Exchange:
    request: bytearray = field(default_factory=bytearray)
    response: bytearray = field(default_factory=bytearray)
    code: int = 0
    too_big: bool = False


class Audit:
    """ASGI layer between authentication and authorization: sees who asked (and who
    they impersonated), what the authorizer decided, and what was answered."""

    def __init__(self, app: ASGIApp, policy: Policy, writer: RotatingWriter) -> None:
        self.app = app
        self.policy = policy
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        user: UserInfo | None = state.get("user")
        if scope["type"] not in ("http", "websocket") or user is None:
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        query = scope.get("query_string", b"").decode("latin-1")
        attrs = from_request(method, scope["path"], query)
        level, omit = self.policy.decide(user, attrs)
        if level == "None":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": headers.get("audit-id") or str(uuid.uuid4()),
            "stage": "RequestReceived",
            "requestURI": scope["path"] + (f"?{query}" if query else ""),
            "verb": attrs.verb,
            "user": _user(user),
            "sourceIPs": [(scope.get("client") or ("", 0))[0]],
            "userAgent": headers.get("user-agent", ""),
            "requestReceivedTimestamp": _now(),
        }
        if attrs.resource_request:
            ref = {
                "resource": attrs.resource,
                "namespace": attrs.namespace,
                "name": attrs.name,
                "apiGroup": attrs.api_group,
                "apiVersion": attrs.api_version,
                "subresource": attrs.subresource,
            }
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        if "RequestReceived" not in omit:
            self.writer.write({**event, "stageTimestamp": _now()})
        exchange = _Exchange()
        keep_bodies = level in ("Request", "RequestResponse")

        async def receive_copy() -> Message:
            message = await receive()
            if keep_bodies and message.get("type") == "http.request" and not exchange.too_big:
                exchange.request += message.get("body", b"")
                if len(exchange.request) > BODY_LIMIT:
                    exchange.too_big, exchange.request = True, bytearray()
            return message

        async def send_copy(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                exchange.code = message["status"]
            elif kind == "websocket.accept":
                exchange.code = 101
            elif kind == "http.response.body" and (
                level == "RequestResponse" or exchange.code >= 400
            ):
                if len(exchange.response) <= BODY_LIMIT:
                    exchange.response += message.get("body", b"")
            await send(message)

        panicked = False
        try:
            await self.app(scope, receive_copy, send_copy)
        except BaseException:
            panicked = True
            raise
        finally:
            self._complete(event, state, exchange, level, omit, panicked)

    def _complete(
        self,
        event: dict[str, Any],
        state: dict[str, Any],
        exchange: _Exchange,
        level: str,
        omit: frozenset[str],
        panicked: bool,
    ) -> None:
        stage = "Panic" if panicked else "ResponseComplete"
        if stage in omit:
            return
        acting: UserInfo | None = state.get("user")
        if acting is not None and acting.name != event["user"]["username"]:
            event["impersonatedUser"] = _user(acting)
        status: dict[str, Any] = {"metadata": {}, "code": exchange.code or 500}
        decision = state.get("authz_decision")
        if decision:
            event["annotations"] = {
                "authorization.k8s.io/decision": decision,
                "authorization.k8s.io/reason": state.get("authz_reason", ""),
            }
        body = _json(exchange.response) if exchange.response else None
        if isinstance(body, dict) and body.get("kind") == "Status":
            for key in ("status", "message", "reason"):
                if key in body:
                    status[key] = body[key]
        event["responseStatus"] = status
        if level in ("Request", "RequestResponse") and exchange.request:
            request_body = _json(exchange.request)
            if request_body is not None:
                event["requestObject"] = request_body
        if level == "RequestResponse" and isinstance(body, dict):
            event["responseObject"] = body
        event["stage"] = stage
        event["stageTimestamp"] = _now()
        try:
            self.writer.write(event)
        except OSError as e:
            log.warning("audit log write failed: %s", e)


def _json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(bytes(raw))
    except (ValueError, UnicodeDecodeError):
        return None
