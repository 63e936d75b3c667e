"""Image references normalized as Docker does, and unsafe layers refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runtime.images.layers import UnsafeLayer, unpack
from runtime.images.reference import normalize

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("bitnami/redis", "docker.io/bitnami/redis:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("127.0.0.1:5000/team/app:v2", "127.0.0.1:5000/team/app:v2"),
        ("ghcr.io/org/tool", "ghcr.io/org/tool:latest"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    ],
)
def test_normalize(ref: str, expected: str) -> None:
    assert str(normalize(ref)) == expected


@pytest.mark.parametrize("ref", ["", "UPPER/case", "x@sha256:short", "x:bad tag"])
def test_bad_references(ref: str) -> None:
    with pytest.raises(ValueError):
        normalize(ref)


def test_layer_escaping_its_directory_is_refused(tmp_path: Path) -> None:
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(UnsafeLayer):
        unpack(tar_path, tmp_path / "layer")
    assert not (tmp_path / "escaped").exists()
