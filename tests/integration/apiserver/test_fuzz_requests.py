"""Fuzzing the API with malformed requests: never a 5xx, never a traceback, no stray writes.

test_fuzz.py mutates valid objects; this file mutates the requests around them.
Each case is written as raw bytes on its own TLS connection (no HTTP library
in between to tidy it up), so that it can carry what no well-behaved client
sends: paths with `..`, `%2e%2e`, `//`, NUL and control bytes, bad
percent-encoding and bad UTF-8, very long paths; unknown groups, versions,
resources and subresources; any method (TRACE, PROPFIND, `FOO`, lower case);
bad or huge headers (Content-Type, Accept, Authorization, Impersonate-*,
Content-Length, Transfer-Encoding); bodies that are huge, truncated, bad
UTF-8, nested 100,000 deep, of the wrong media type or protobuf garbage;
and query strings with junk selectors, watch, limit, continue and friends.
Cases are sent as the admin, as an RBAC user who may only read one
namespace, anonymously, and with a bad token.

Every answer must be below 500 (504 only for a list from a future
resourceVersion, as kube-apiserver answers it), no body may hold Python
traceback text, every refusal under /api, /apis and /openapi must be a
Kubernetes `Status` (kube-apiserver writes one for all of them; only a
request that is not valid HTTP gets the HTTP server's plain text), the
apiserver log must hold no traceback, and the server must be healthy
afterwards. Keys and values in etcd are compared before and after: every
change must belong to a write the admin made that was answered 2xx (no other
identity may write at all).

SKIFF_FUZZ_SEED and SKIFF_FUZZ_CASES change the seed and the number of cases;
run with -s to see the counts. About 30 s.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import random
import re
import socket
import ssl
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from apiserver import certs, paths

SEED = int(os.environ.get("SKIFF_FUZZ_SEED", "14"))
CASES = int(os.environ.get("SKIFF_FUZZ_CASES", "1500"))
NS = "fuzzreq"
VIEWER = "fuzz-viewer"  # may read NS (ClusterRole view bound there), nothing else
WORKERS = 8

# --- the corpus --------------------------------------------------------------------

PATHS = [
    "/",
    "/api",
    "/api/v1",
    "/apis",
    "/apis/apps",
    "/apis/apps/v1",
    "/apis/rbac.authorization.k8s.io/v1",
    "/version",
    "/healthz",
    "/livez",
    "/readyz/etcd",
    "/metrics",
    "/openapi/v2",
    "/openapi/v3",
    "/openapi/v3/api/v1",
    "/openapi/v3/apis/apps/v1",
    "/api/v1/namespaces",
    f"/api/v1/namespaces/{NS}",
    f"/api/v1/namespaces/{NS}/status",
    f"/api/v1/namespaces/{NS}/finalize",
    f"/api/v1/namespaces/{NS}/configmaps",
    f"/api/v1/namespaces/{NS}/configmaps/keep",
    f"/api/v1/namespaces/{NS}/secrets/keep",
    f"/api/v1/namespaces/{NS}/pods",
    f"/api/v1/namespaces/{NS}/pods/p",
    f"/api/v1/namespaces/{NS}/pods/p/status",
    f"/api/v1/namespaces/{NS}/pods/p/log",
    f"/api/v1/namespaces/{NS}/pods/p/exec",
    f"/api/v1/namespaces/{NS}/pods/p/binding",
    f"/api/v1/namespaces/{NS}/pods/p/eviction",
    f"/api/v1/namespaces/{NS}/pods/p/portforward",
    f"/api/v1/namespaces/{NS}/services",
    f"/api/v1/namespaces/{NS}/services/s/proxy/x",
    f"/api/v1/namespaces/{NS}/serviceaccounts/default/token",
    f"/api/v1/namespaces/{NS}/events",
    f"/api/v1/watch/namespaces/{NS}/configmaps",
    "/api/v1/nodes",
    "/api/v1/nodes/n1",
    "/api/v1/nodes/n1/proxy/stats",
    "/api/v1/pods",
    f"/apis/apps/v1/namespaces/{NS}/deployments",
    f"/apis/apps/v1/namespaces/{NS}/deployments/d/scale",
    f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
    f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    "/apis/authentication.k8s.io/v1/tokenreviews",
    "/apis/certificates.k8s.io/v1/certificatesigningrequests",
    "/apis/metrics.k8s.io/v1beta1/nodes",
    f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
]

# Paths an admin may write to (all inside NS, so that writes can be accounted for).
WRITE_PATHS = [p for p in PATHS if f"/namespaces/{NS}/" in p and "/watch/" not in p]

METHODS = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "PROPFIND",
    "FOO",
    "get",
    "G\x00T",
    "GET GET",
    "X" * 300,
]
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Creates that store nothing (reviews, TokenRequest): a 201 from them is no write.
VIRTUAL = re.compile(rb"reviews|/serviceaccounts/[^/]+/token")

CONTENT_TYPES = [
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json; charset=latin1",
    "application/json;;;",
    "text/plain",
    "application/xml",
    "multipart/form-data; boundary=x",
    "*/*",
    "",
    "application/" + "j" * 5000,
    "applicat\xc3\xa9ion/json",
]

ACCEPTS = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;as=Table;v=v1;g=meta.k8s.io",
    "application/json;as=Table;v=v9;g=meta.k8s.io",
    "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    "application/json;stream=watch",
    "text/html",
    "*/*;q=x",
    "application/json;q=0, */*;q=0",
    ";;;,,,",
    "application/json;as=" + "T" * 5000,
]

QUERIES = [
    "labelSelector=a%20in%20(",
    "labelSelector=!!",
    "labelSelector=a=b,",
    "labelSelector=a%20notin%20()",
    "labelSelector=" + "a," * 3000 + "a",
    "labelSelector=%C3%BC%3D%FF",
    "labelSelector=a%3D%3D%3Db",
    "fieldSelector=metadata.name%3D%3Dx%3Dy",
    "fieldSelector=spec.nodeName",
    "fieldSelector=no.such.field%3Dx",
    "fieldSelector=metadata.name%21%3D",
    "fieldSelector=%00",
    "watch=junk",
    "watch=1&resourceVersion=junk",
    "watch=true&timeoutSeconds=x",
    "watch=1&timeoutSeconds=1&allowWatchBookmarks=maybe&sendInitialEvents=2",
    "watch=1&timeoutSeconds=1&resourceVersion=0&resourceVersionMatch=Exact",
    "limit=-1",
    "limit=99999999999999999999999",
    "limit=1e3",
    "limit=2&continue=garbage",
    "limit=2&continue=" + base64.b64encode(b'{"rv": "x", "start": 5}').decode(),
    "limit=2&continue=" + base64.urlsafe_b64encode(b"\xff\xfe" * 20).decode(),
    "continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoiLi4vLi4vIn0",
    "resourceVersion=-5",
    "resourceVersion=999999999999999999999",
    "resourceVersionMatch=NotOlderThan",
    "timeoutSeconds=-1",
    "gracePeriodSeconds=abc",
    "propagationPolicy=Sideways",
    "orphanDependents=perhaps",
    "dryRun=Some",
    "dryRun=All&dryRun=All&dryRun=",
    "fieldManager=" + "m" * 200,
    "fieldManager=%FF",
    "fieldValidation=Loud",
    "force=maybe",
    "pretty=%ZZ",
    "%",
    "%zz=%zz",
    "a=%FF%FE&b=%00",
    "&&&=&",
    "command=ls&container=%2e%2e&stdout=2&tty=maybe",
    "follow=1&tailLines=-3&limitBytes=x&sinceSeconds=1e9&previous=2",
    "x=" + "y" * 20000,
    "as=Table",
]

AUTHORIZATIONS = [
    "Bearer",
    "Bearer ",
    "Bearer x",
    "Bearer " + "t" * 20000,
    "Basic dXNlcjpwYXNz",
    "Bearer \xff\xfe",
    "bearer TOKEN",
    "Bearer  TOKEN",
    "Negotiate abc",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.",
    "Bearer eyJhbGciOiJSUzI1NiJ9.%%%%.%%%%",
]

IMPERSONATION = [
    [("Impersonate-User", "system:anonymous")],
    [("Impersonate-User", "")],
    [("Impersonate-User", "\xff\xfe")],
    [("Impersonate-Group", "system:masters")],
    [("Impersonate-User", "jane"), ("Impersonate-Group", "system:masters")],
    [("Impersonate-User", "jane"), ("Impersonate-Extra-%zz", "x")],
    [("Impersonate-User", "jane"), ("Impersonate-Extra-", "x")],
    [("Impersonate-User", "jane"), ("Impersonate-Uid", "u" * 5000)],
    [("Impersonate-Uid", "abc")],
    [("Impersonate-User", "system:serviceaccount:" + NS + ":default")],
    [("Impersonate-User", "system:serviceaccount:::")],
    [("Impersonate-User", "system:node:")],
]

OTHER_HEADERS = [
    [("Content-Length", "-1")],
    [("Content-Length", "abc")],
    [("Content-Length", "5"), ("Content-Length", "6")],
    [("Transfer-Encoding", "chunked, gzip")],
    [("Transfer-Encoding", "identity")],
    [("Content-Encoding", "gzip")],
    [("Expect", "100-continue")],
    [("Host", "")],
    [("Host", "evil.example\xff")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade")],
    [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings")],
    [("Audit-ID", "a" * 10000)],
    [("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters")],
    [("Sec-WebSocket-Protocol", "v5.channel.k8s.io")],
    [(f"X-Junk-{i}", "v" * 100) for i in range(500)],
    [("X-Big", "b" * 200_000)],
    [("X-Huge", "h" * 1_100_000)],
    [("Bad Header", "x")],
    [("X-Nul", "a\x00b")],
    [("X-Fold", "a\r\n b")],
]


def nested(depth: int, yaml_flow: bool = False) -> bytes:
    return b"[" * depth + b"]" * depth if not yaml_flow else b"a: " + b"[" * depth + b"]" * depth


OBJECT = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "fz", "labels": {"a": "b"}},
    "data": {"k": "v"},
}
OBJECT_JSON = json.dumps(OBJECT).encode()

BODIES: list[bytes] = [
    b"",
    b"{}",
    b"null",
    b"[]",
    b'"x"',
    b"12",
    OBJECT_JSON,
    OBJECT_JSON[: len(OBJECT_JSON) // 2],
    OBJECT_JSON.replace(b'"fz"', b'"f\xff\xfez"'),
    OBJECT_JSON.replace(b'"v"', b'"\xc3"'),
    b"\xef\xbb\xbf" + OBJECT_JSON,
    b"\xff\xfe{\x00}\x00",
    OBJECT_JSON.replace(b'"v"', b'"\\ud800"'),
    b'{"metadata": ' * 5000 + b"{}" + b"}" * 5000,
    nested(100_000),
    nested(20_000, yaml_flow=True),
    b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(3000)),
    b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    + b"".join(
        b"%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n"
        % ((ord("b") + i,) * 2 + (ord("a") + i,) * 9)
        for i in range(9)
    ),
    b"k8s\x00" + bytes(random.Random(1).randrange(256) for _ in range(300)),
    b"k8s\x00\x0a\x02\x08\x01\x12\xff\xff\xff\xff\x0f",
    b"k8s\x00" + b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x00" * 1000,
    b'[{"op": "replace", "path": "/data/k", "value": "w"}]',
    b'[{"op": "copy", "from": "/metadata", "path": "/metadata/labels/x"}]',
    b'[{"op": "move", "from": "/", "path": "/x"}]',
    b'[{"op": "test", "path": "/~2", "value": 1}]',
    b'{"$patch": "delete"}',
    b'{"data": {"$retainKeys": [1]}, "$setElementOrder/data": 5}',
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fz}\ndata: {k: !!binary AAA=}\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: tab\n",
    b"--- 1\n--- 2\n",
    b"!!python/object/apply:os.system ['true']",
    b'{"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": "x"}',
    b'{"kind": "DeleteOptions", "preconditions": {"uid": 5}, "propagationPolicy": 1}',
    b'{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",'
    b' "spec": {"resourceAttributes": {"verb": 5, "resource": ["x"]}}}',
    b'{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",'
    b' "spec": {"nonResourceAttributes": {"path": "\\u0000", "verb": ""}}}',
    b'{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": 1}}',
    b'{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",'
    b' "spec": {"audiences": "x", "expirationSeconds": -5}}',
    b'{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": 7}}',
    b'{"apiVersion": "v1", "kind": "Binding", "target": {"name": ["n1"]}}',
    b'{"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": "lots"}}',
    b"x" * (3 * 1024 * 1024 + 1),
    b"{" + b'"a":1,' * 600_000 + b'"b":1}',
]


def mutate_path(rng: random.Random, path: str) -> bytes:
    """One of the ways a path can be wrong, as the raw request-target bytes."""
    parts = path.split("/")
    choice = rng.randrange(22)
    if choice == 0:
        parts.insert(rng.randrange(1, len(parts) + 1), "..")
    elif choice == 1:
        parts.insert(rng.randrange(1, len(parts) + 1), rng.choice(["%2e%2e", "%2E%2e", ".%2e"]))
    elif choice == 2:
        return (path + "/../../../../etc/passwd").encode()
    elif choice == 3:
        return path.replace("/", "//", rng.randrange(1, 4)).encode()
    elif choice == 4 and len(parts) > 2:
        parts[rng.randrange(1, len(parts))] = rng.choice(
            [
                "nosuch",
                "v9",
                "apps.example.com",
                "CONFIGMAPS",
                "configmaps.v1",
                "watch",
                "namespaces",
            ]
        )
    elif choice == 5:
        parts.append(rng.choice(["status", "scale", "nosuch", "log", "exec", "proxy", "finalize"]))
    elif choice == 6:
        parts.extend(["x", "y", "z"][: rng.randrange(1, 4)])
    elif choice == 7:
        parts.append("a" * rng.choice([300, 5000, 60_000]))
    elif choice == 8:
        return (path + "/a\x00b").encode()
    elif choice == 9:
        return (path + "/" + "".join(chr(rng.randrange(1, 32)) for _ in range(3))).encode()
    elif choice == 10:
        parts.append(rng.choice(["%zz", "%", "%e2%82", "%ff%fe", "%00", "%0a", "%2f", "%5c"]))
    elif choice == 11:
        return path.encode() + b"/\xff\xfe\xc3"
    elif choice == 12:
        parts.append("über")
    elif choice == 13:
        return path.upper().encode()
    elif choice == 14:
        return (path + "/").encode()
    elif choice == 15:
        return (path + ";x=y").encode()
    elif choice == 16:
        return (path + "#frag").encode()
    elif choice == 17:
        return rng.choice([b"*", b"", b"https://127.0.0.1" + path.encode(), b"api/v1", b"?x"])
    elif choice == 18 and len(parts) > 2:
        del parts[rng.randrange(1, len(parts))]
    elif choice == 19:
        parts.insert(rng.randrange(1, len(parts) + 1), ".")
    elif choice == 20:
        return urllib.parse.quote(path, safe="").encode()
    else:
        parts.append(urllib.parse.quote(rng.choice(["..", "a b", "a?b", "a#b", "\x7f"])))
    return "/".join(parts).encode("utf-8", "surrogateescape")


# --- raw HTTP over TLS ----------------------------------------------------------------


@dataclass
class Case:
    n: int
    who: str  # admin, viewer, anonymous, badtoken
    method: str
    target: bytes
    headers: list[tuple[str, str]]
    body: bytes
    malformed: bool = False  # not valid HTTP/1.1 on purpose
    what: list[str] = field(default_factory=list)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    error: str = ""


def _request_bytes(case: Case, token: str) -> bytes:
    lines = [case.method.encode("latin-1", "replace") + b" " + case.target + b" HTTP/1.1"]
    names = {name.lower() for name, _ in case.headers}
    if "host" not in names:
        lines.append(b"Host: 127.0.0.1")
    if case.who == "admin":
        lines.append(b"Authorization: Bearer " + token.encode())
    for name, value in case.headers:
        lines.append(name.encode("latin-1") + b": " + value.encode("latin-1", "replace"))
    if "content-length" not in names and "transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(case.body))
    lines.append(b"Connection: close")
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if "transfer-encoding" in names and b"chunked" in b"".join(
        v.encode("latin-1", "replace") for n, v in case.headers if n.lower() == "transfer-encoding"
    ):
        return head + b"%x\r\n" % len(case.body) + case.body + b"\r\n0\r\n\r\n"
    return head + case.body


def _read_answer(sock: ssl.SSLSocket, head_only: bool) -> Answer:
    return _read_answer_from(sock, b"", head_only)


def _read_answer_from(sock: ssl.SSLSocket, data: bytes, head_only: bool) -> Answer:
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/1.1 "):
        return Answer(0, {}, data, error=f"no HTTP answer: {data[:200]!r}")
    status = int(lines[0].split()[1])
    if status == 100:  # Expect: 100-continue; the answer follows
        if b"\r\n\r\n" not in rest:
            rest += sock.recv(65536)
        return _read_answer_from(sock, rest, head_only)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only or status == 101:
        return Answer(status, headers, b"")
    if headers.get("transfer-encoding") == "chunked":
        # Watches and streams: what arrives within the socket timeout is enough.
        try:
            while not rest.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except TimeoutError:
            pass
        return Answer(status, headers, _dechunk(rest))
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(status, headers, rest)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return out + size_line + data
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


class Sender:
    def __init__(self, server: Any, viewer_cert: certs.KeyPair) -> None:
        self.server = server
        self.token = server.token
        self.plain = server.ssl_context()
        self.viewer = server.ssl_context()
        self.viewer.load_cert_chain(str(viewer_cert.cert), str(viewer_cert.key))

    def send(self, case: Case) -> Answer:
        context = self.viewer if case.who == "viewer" else self.plain
        raw = _request_bytes(case, self.token)
        try:
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=15) as tcp:
                with context.wrap_socket(tcp, server_hostname="127.0.0.1") as sock:
                    try:
                        sock.sendall(raw)
                    except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
                        pass  # refused early (413, 431): the answer is still there to read
                    sock.settimeout(5 if b"watch" in case.target else 15)
                    return _read_answer(sock, head_only=case.method == "HEAD")
        except (OSError, ssl.SSLError) as e:
            return Answer(0, {}, b"", error=f"{type(e).__name__}: {e}")


# --- generating cases ---------------------------------------------------------------------


def _content_type(rng: random.Random, body: bytes) -> str:
    """Half the time the media type the body looks like, so that decoders see it."""
    if rng.random() < 0.5:
        return rng.choice(CONTENT_TYPES)
    if body.startswith(b"k8s\x00"):
        return "application/vnd.kubernetes.protobuf"
    if body.startswith(b"[{"):
        return "application/json-patch+json"
    if body.startswith((b"a:", b"apiVersion:", b"---", b"!!")):
        return rng.choice(["application/yaml", "application/apply-patch+yaml"])
    return rng.choice(
        [
            "application/json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ]
    )


def make_case(rng: random.Random, n: int) -> Case:
    who = rng.choices(["admin", "viewer", "anonymous", "badtoken"], [5, 3, 1, 1])[0]
    method = (
        rng.choice(METHODS)
        if rng.random() < 0.25
        else rng.choice(["GET", "GET", "POST", "PUT", "PATCH", "DELETE"])
    )
    what = [who, method[:10]]
    base = rng.choice(WRITE_PATHS if method in WRITE_METHODS and who == "admin" else PATHS)
    target = base.encode()
    malformed = (
        method
        not in {
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "OPTIONS",
            "TRACE",
            "CONNECT",
            "PROPFIND",
        }
        or " " in method
    )
    if rng.random() < 0.5:
        target = mutate_path(rng, base)
        what.append("path")
        if any(b in target for b in (b"\x00", b"\xff", b"#")) or target in (b"", b"?x"):
            malformed = True
        if any(c < 0x20 or c >= 0x7F for c in target):
            malformed = True
    if rng.random() < 0.4:
        query = "&".join(rng.choice(QUERIES) for _ in range(rng.randrange(1, 3)))
        target += (b"&" if b"?" in target else b"?") + query.encode()
        what.append("query")
    if len(target) > 65535:
        # httptools (http_parser_parse_url) keeps URL offsets in 16 bits: a longer
        # request target is "Invalid HTTP request" (400, plain text) before the app.
        malformed = True
    headers: list[tuple[str, str]] = []
    if who == "badtoken":
        auth = rng.choice(AUTHORIZATIONS).replace("TOKEN", "not-the-token")
        headers.append(("Authorization", auth))
    if rng.random() < 0.3:
        headers.append(("Accept", rng.choice(ACCEPTS)))
        what.append("accept")
    if rng.random() < 0.15:
        headers.extend(rng.choice(IMPERSONATION))
        what.append("impersonate")
    if rng.random() < 0.15:
        extra = rng.choice(OTHER_HEADERS)
        headers.extend(extra)
        what.append("header")
        names = [n.lower() for n, _ in extra]
        if (
            any(" " in n or not n for n in names)
            or any("\x00" in v or "\r" in v for _, v in extra)
            or names.count("content-length") > 1
            or any(n.lower() == "content-length" and not v.isdigit() for n, v in extra)
            or any(n.lower() == "transfer-encoding" for n, v in extra)
            or sum(len(v) for _, v in extra) > 1 << 20  # 431, Go's plain text
        ):
            malformed = True
    body = b""
    if method not in ("GET", "HEAD") or rng.random() < 0.05:
        body = rng.choice(BODIES)
        if rng.random() < 0.3:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        what.append("body")
        headers.append(("Content-Type", _content_type(rng, body)))
    return Case(n, who, method, target, headers, body, malformed, what)


# --- checks ---------------------------------------------------------------------------------

TRACEBACK_MARKS = (b"Traceback (most recent call last)", b'.py", line ', b"Exception in ASGI")


def _status_of(answer: Answer) -> dict[str, Any] | None:
    """The Status in an answer's body, read as its media type says."""
    kind = answer.headers.get("content-type", "")
    try:
        if "yaml" in kind:
            doc = yaml.safe_load(answer.body)
        elif "protobuf" in kind:
            return {"kind": "Status"} if answer.body.startswith(b"k8s\x00") else None
        else:
            doc = json.loads(answer.body)
    except (ValueError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "Status" else None


def problems(case: Case, answer: Answer) -> list[str]:
    found = []
    if answer.error and not case.malformed:
        found.append(f"no answer: {answer.error}")
    if any(mark in answer.body for mark in TRACEBACK_MARKS):
        found.append("traceback text in the body")
    if answer.status >= 500:
        status = _status_of(answer) or {}
        causes = (status.get("details") or {}).get("causes") or []
        future = answer.status == 504 and any(
            c.get("reason") == "ResourceVersionTooLarge" for c in causes
        )
        # kube-apiserver's impersonation filter answers InternalError (500) for groups,
        # a uid or extras without a user; skiff answers as it does (a Status, no trace).
        asks = {n.lower() for n, v in case.headers if n.lower().startswith("impersonate-")}
        no_user = not any(n.lower() == "impersonate-user" and v for n, v in case.headers)
        impersonation = (
            answer.status == 500
            and bool(asks) and no_user
            and (
                case.method == "HEAD"  # no body to read the message from
                or "without impersonating a user" in str(status.get("message"))
            )
        )  # fmt: skip
        if not future and not impersonation:
            found.append(f"{answer.status}")
    target = case.target.split(b"?")[0]
    api_path = target.startswith((b"/api", b"/openapi"))
    if answer.status >= 400 and api_path and not case.malformed and case.method != "HEAD":
        status = _status_of(answer)
        if status is None:
            found.append(f"{answer.status} without a Status: {answer.body[:120]!r}")
        elif "code" in status and status["code"] != answer.status:
            found.append(f"Status code {status['code']} in a {answer.status} answer")
    return found


# --- etcd ------------------------------------------------------------------------------------


def etcd_snapshot(server: Any) -> dict[str, bytes]:
    done = server.etcdctl("get", "", "--prefix", "-w", "json")
    assert done.returncode == 0, done.stderr
    kvs = json.loads(done.stdout).get("kvs", [])
    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")) for kv in kvs
    }


def key_matches(key: str, write: paths.ResourcePath) -> bool:
    """Whether a changed etcd key can belong to this (2xx) write."""
    parts = key.split("/")  # "", "registry", [group], resource, [namespace], name
    if write.resource == "namespaces" and not write.namespace:
        return parts[2:3] == ["namespaces"] and (not write.name or parts[-1] == write.name)
    if write.namespace and f"/{write.namespace}/" not in key:
        return False
    resource = "pods" if write.subresource in ("binding", "eviction") else write.resource
    if f"/{resource}/" not in key:
        return False
    return not write.name or parts[-1] == write.name


def unaccounted(
    before: dict[str, bytes], after: dict[str, bytes], writes: list[paths.ResourcePath]
) -> list[str]:
    changed = [k for k in before.keys() | after.keys() if before.get(k) != after.get(k)]
    return sorted(k for k in changed if not any(key_matches(k, w) for w in writes))


# --- the test ----------------------------------------------------------------------------------


def _viewer(server: Any, tmp: Path) -> certs.KeyPair:
    pki = server.state_dir / "pki"
    return certs.issue(
        certs.KeyPair(pki / "ca.crt", pki / "ca.key"),
        certs.KeyPair(tmp / "viewer.crt", tmp / "viewer.key"),
        common_name=VIEWER,
        organizations=(),
        client=True,
    )


def _setup(api: httpx.Client) -> None:
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
    assert r.status_code == 201, r.text
    for path, obj in [
        (f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "keep"}, "data": {"a": "b"}}),
        (f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "keep"}, "data": {"a": "Yg=="}}),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/" + NS + "/rolebindings",
            {
                "metadata": {"name": "viewer"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": VIEWER}
                ],
            },
        ),
    ]:
        r = api.post(path, json=obj)
        assert r.status_code == 201, r.text


LISTED = [
    f"/api/v1/namespaces/{NS}/{r}"
    for r in ("configmaps", "secrets", "pods", "services", "events", "serviceaccounts")
] + [
    f"/apis/apps/v1/namespaces/{NS}/deployments",
    f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
    f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
    f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles",
    "/api/v1/namespaces",
    "/api/v1/nodes",
]


def _healthy(server: Any, api: httpx.Client) -> None:
    """Alive, ready, and serving a write and a read (in `default`: the fuzz may
    have deleted its own namespace, which then stays Terminating)."""
    assert server.proc.poll() is None, "the apiserver exited"
    for path in ("/readyz", "/livez"):
        r = api.get(path)
        assert r.status_code == 200, (path, r.text)
    r = api.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "after-fuzz"}})
    assert r.status_code == 201, r.text
    assert api.get("/api/v1/namespaces/default/configmaps/after-fuzz").status_code == 200


def run_cases(server: Any, tmp: Path, seed: int, count: int) -> dict[str, Any]:
    rng = random.Random(seed)
    cases = [make_case(rng, n) for n in range(count)]
    sender = Sender(server, _viewer(server, tmp))
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        answers = list(pool.map(sender.send, cases))
    return {"cases": cases, "answers": answers}


def test_malformed_requests_never_break_the_server(start_apiserver: Any, tmp_path: Path) -> None:
    server = start_apiserver()
    log_start = server.log.stat().st_size
    with server.client() as api:
        _setup(api)
        # Wait until the viewer's binding is in the authorizer's cache.
        deadline = time.monotonic() + 20
        sender = Sender(server, _viewer(server, tmp_path))
        while True:
            probe = Case(
                0, "viewer", "GET", f"/api/v1/namespaces/{NS}/configmaps".encode(), [], b""
            )
            if sender.send(probe).status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        before = etcd_snapshot(server)
        started = time.monotonic()
        result = run_cases(server, tmp_path, SEED, CASES)
        elapsed = time.monotonic() - started
        after = etcd_snapshot(server)

        failures: list[str] = []
        writes: list[paths.ResourcePath] = []
        codes: Counter[int] = Counter()
        for case, answer in zip(result["cases"], result["answers"], strict=True):
            codes[answer.status] += 1
            for p in problems(case, answer):
                failures.append(
                    f"#{case.n} {case.who} {case.method[:12]} {case.target[:100]!r} "
                    f"{[(n, v[:40]) for n, v in case.headers]} body={case.body[:60]!r}: {p}"
                )
            wrote = case.method in WRITE_METHODS and 200 <= answer.status < 300
            if wrote and case.who != "admin" and not VIRTUAL.search(case.target):
                failures.append(f"#{case.n} {case.who} wrote: {case.method} {case.target!r}")
            if wrote:
                parsed = paths.parse(
                    urllib.parse.unquote(case.target.split(b"?")[0].decode("latin-1"))
                )
                if parsed is not None:
                    writes.append(parsed)
        stray = unaccounted(before, after, writes)
        log_text = server.log.read_bytes()[log_start:]
        tracebacks = log_text.count(b"Traceback (most recent call last)")
        print(
            f"\nrequest fuzz: seed {SEED}, {CASES} cases in {elapsed:.1f}s, answers "
            f"{dict(sorted(codes.items()))}, 5xx {sum(v for k, v in codes.items() if k >= 500)}, "
            f"2xx writes {len(writes)}, etcd keys changed "
            f"{sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))}, "
            f"unaccounted {len(stray)}, log tracebacks {tracebacks}, failures {len(failures)}"
        )
        for f in failures[:80]:
            print("  ", f)
        if tracebacks:
            print(log_text.decode(errors="replace")[-6000:])
        assert not failures, f"{len(failures)} bad answers, first: {failures[:10]}"
        assert not stray, f"etcd changed without a 2xx write to account for it: {stray[:20]}"
        assert tracebacks == 0, log_text.decode(errors="replace")[-3000:]
        _healthy(server, api)
        # Whatever was written must still be readable as what its URL says it is.
        for resource in LISTED:
            r = api.get(resource)
            assert r.status_code == 200, (resource, r.text[:500])


# --- regressions: one test for each defect the fuzzing found ------------------------------


def _raw(server: Any, request: bytes, *, close_early: bool = False) -> Answer:
    """One raw request on its own TLS connection; `close_early` hangs up after sending."""
    context = server.ssl_context()
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as tcp:
        with context.wrap_socket(tcp, server_hostname="127.0.0.1") as sock:
            try:
                sock.sendall(request)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
                pass
            if close_early:
                return Answer(0, {}, b"")
            return _read_answer(sock, head_only=False)


def test_a_patch_cannot_change_the_kind_of_a_stored_object(
    api: httpx.Client, namespace: str
) -> None:
    """A merge patch that rewrote `kind` stored a SelfSubjectAccessReview under a
    Secret's key; every later read of that Secret (and its list) answered 500."""
    base = f"/api/v1/namespaces/{namespace}/secrets"
    r = api.post(base, json={"metadata": {"name": "s"}, "data": {"k": "dg=="}})
    assert r.status_code == 201, r.text
    merge = {"Content-Type": "application/merge-patch+json"}
    for body, headers in [
        ({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}, merge),
        ({"kind": "ConfigMap"}, merge),
        ({"apiVersion": "v2"}, {"Content-Type": "application/strategic-merge-patch+json"}),
        (
            [{"op": "replace", "path": "/kind", "value": "Pod"}],
            {"Content-Type": "application/json-patch+json"},
        ),
    ]:
        r = api.patch(f"{base}/s", content=json.dumps(body), headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["kind"] == "Status" and "does not match the expected" in r.json()["message"]
    got = api.get(f"{base}/s")
    assert got.status_code == 200 and got.json()["kind"] == "Secret", got.text
    assert api.get(base).status_code == 200
    # Leaving kind out (or giving the same) still patches.
    r = api.patch(f"{base}/s", content=json.dumps({"kind": None, "data": {"k": "dw=="}}),
                  headers=merge)  # fmt: skip
    assert r.status_code == 200 and r.json()["kind"] == "Secret", r.text


def test_request_headers_over_one_mebibyte_are_refused_with_431(apiserver: Any) -> None:
    """httptools buffers headers without any bound; kube-apiserver (Go's server)
    answers 431 past 1 MiB. Under that limit a big header is still served."""
    token = apiserver.token.encode()
    head = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
    big = _raw(apiserver, head + b"\r\nX-Big: " + b"b" * 200_000 + b"\r\nConnection: close\r\n\r\n")
    assert big.status == 200, big.body[:200]
    huge = _raw(
        apiserver, head + b"\r\nX-Big: " + b"b" * 1_100_000 + b"\r\nConnection: close\r\n\r\n"
    )
    assert huge.status == 431, (huge.status, huge.body[:200])
    assert huge.body == b"431 Request Header Fields Too Large"
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(1100))
    lots = _raw(apiserver, head + b"\r\n" + many + b"Connection: close\r\n\r\n")
    assert lots.status == 431
    with apiserver.client() as api:
        assert api.get("/readyz").status_code == 200


def test_a_client_hanging_up_mid_body_is_no_crash(apiserver: Any, namespace: str) -> None:
    """A client that closes before its announced body arrived made the body read
    raise ClientDisconnect: logged as a crash with a traceback, answered 500."""
    start = apiserver.log.stat().st_size
    token = apiserver.token.encode()
    for method, path in [
        (b"DELETE", f"/api/v1/namespaces/{namespace}/configmaps/gone".encode()),
        (b"POST", f"/api/v1/namespaces/{namespace}/configmaps".encode()),
        (b"POST", b"/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
    ]:
        request = (
            method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
            + b"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"kind\":"
        )  # fmt: skip
        _raw(apiserver, request, close_early=True)
    deadline = time.monotonic() + 20
    while True:
        logged = apiserver.log.read_bytes()[start:]
        if logged.count(b'"code":400') >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert b"Traceback" not in logged, logged.decode(errors="replace")[-3000:]
    assert logged.count(b'"code":400') >= 3, logged.decode(errors="replace")[-3000:]
    assert b'"code":500' not in logged
