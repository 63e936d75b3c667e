"""REST paths parse into what they name, exactly as kube-apiserver reads them."""

from __future__ import annotations

import pytest

from apiserver.paths import ResourcePath, parse


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/pods", ResourcePath("", "v1", "pods")),
        ("/api/v1/namespaces", ResourcePath("", "v1", "namespaces")),
        ("/api/v1/namespaces/default", ResourcePath("", "v1", "namespaces", "", "default")),
        (
            "/api/v1/namespaces/x/status",
            ResourcePath("", "v1", "namespaces", "", "x", "status"),
        ),
        (
            "/api/v1/namespaces/x/finalize",
            ResourcePath("", "v1", "namespaces", "", "x", "finalize"),
        ),
        ("/api/v1/namespaces/ns/pods", ResourcePath("", "v1", "pods", "ns")),
        ("/api/v1/namespaces/ns/pods/p", ResourcePath("", "v1", "pods", "ns", "p")),
        (
            "/api/v1/namespaces/ns/pods/p/binding",
            ResourcePath("", "v1", "pods", "ns", "p", "binding"),
        ),
        (
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            ResourcePath("apps", "v1", "deployments", "ns", "d", "scale"),
        ),
        ("/api/v1/nodes/n1/status", ResourcePath("", "v1", "nodes", "", "n1", "status")),
        ("/api/v1/watch/pods", ResourcePath("", "v1", "pods", watch=True)),
        (
            "/api/v1/watch/namespaces/ns/pods/p",
            ResourcePath("", "v1", "pods", "ns", "p", watch=True),
        ),
        ("/apis/apps/v1/deployments", ResourcePath("apps", "v1", "deployments")),
    ],
)
def test_parse(path: str, expected: ResourcePath) -> None:
    assert parse(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/healthz",
        "/api/v1/nodes/a/b/c",
    ],
)
def test_not_a_resource(path: str) -> None:
    assert parse(path) is None
