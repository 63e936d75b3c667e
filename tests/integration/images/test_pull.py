"""Pulling from a real registry (Debian's docker-registry, on loopback, started here)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.images.pull import PullError, RegistryAuth, pull
from runtime.images.store import ImageStore

pytestmark = pytest.mark.skipif(
    not shutil.which("docker-registry"), reason="needs Debian's docker-registry"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(tmp: Path, htpasswd: Path | None = None) -> tuple[str, subprocess.Popen]:
    port = free_port()
    auth = f"auth:\n  htpasswd:\n    realm: skiff-test\n    path: {htpasswd}\n" if htpasswd else ""
    config = tmp / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=open(tmp / "registry.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return f"127.0.0.1:{port}", proc
        except httpx.HTTPError:
            assert time.monotonic() < deadline, (tmp / "registry.log").read_text()
            time.sleep(0.1)


def push(
    host: str, repo: str, tag: str, files: dict[str, bytes], auth: tuple[str, str] | None = None
) -> str:
    """Push a one-layer image through the distribution API; returns its config digest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    layer_tar = raw.getvalue()
    layer = gzip.compress(layer_tar)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()],
            },
        }
    ).encode()
    client = httpx.Client(base_url=f"http://{host}/v2/{repo}", auth=auth)

    def upload(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = client.post("/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        separator = "&" if "?" in location else "?"  # keep the upload's own query
        put = client.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert put.status_code == 201, put.text
        return digest

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": upload(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": upload(layer),
                "size": len(layer),
            }
        ],
    }
    r = client.put(
        f"/manifests/{tag}",
        content=json.dumps(manifest),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 201, r.text
    return manifest["config"]["digest"]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "reg").mkdir()
    host, proc = start_registry(tmp_path / "reg")
    try:
        yield host
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pull_by_tag_and_digest(registry: str, tmp_path: Path) -> None:
    config_digest = push(registry, "team/app", "1.0", {"hello.txt": b"hi from the registry"})
    store = ImageStore(tmp_path / "images")
    image = pull(store, f"{registry}/team/app:1.0", insecure_registries=[registry])
    assert image.id == config_digest  # the registry's config, byte for byte
    assert (image.layer_dirs[0] / "hello.txt").read_bytes() == b"hi from the registry"
    assert image.config == {"Cmd": ["sh"]}
    assert store.get(f"{registry}/team/app:1.0") == image
    with pytest.raises(PullError, match="not found"):
        pull(store, f"{registry}/team/missing:1", insecure_registries=[registry])


def test_basic_auth(tmp_path: Path) -> None:
    if not shutil.which("htpasswd"):
        pytest.skip("needs htpasswd (apache2-utils)")
    (tmp_path / "reg").mkdir()
    line = subprocess.run(
        ["htpasswd", "-Bbn", "alice", "s3cret"], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "htpasswd").write_text(line)
    host, proc = start_registry(tmp_path / "reg", tmp_path / "htpasswd")
    try:
        push(host, "private/app", "1", {"a": b"1"}, auth=("alice", "s3cret"))
        store = ImageStore(tmp_path / "images")
        with pytest.raises(PullError, match="refused the username or password"):
            pull(
                store,
                f"{host}/private/app:1",
                insecure_registries=[host],
                auth=RegistryAuth("alice", "wrong"),
            )
        image = pull(
            store,
            f"{host}/private/app:1",
            insecure_registries=[host],
            auth=RegistryAuth("alice", "s3cret"),
        )
        assert (image.layer_dirs[0] / "a").read_bytes() == b"1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
