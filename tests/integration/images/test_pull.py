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


def start_registry(
    tmp: Path, htpasswd: Path | None = None, token_auth: str = ""
) -> tuple[str, subprocess.Popen]:
    port = free_port()
    auth = f"auth:\n  htpasswd:\n    realm: skiff-test\n    path: {htpasswd}\n" if htpasswd else ""
    auth = auth or token_auth
    config = tmp / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    with open(tmp / "registry.log", "ab") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                return f"127.0.0.1:{port}", proc
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp / "registry.log").read_text()
                assert time.monotonic() < deadline, (tmp / "registry.log").read_text()
                time.sleep(0.1)
    except BaseException:
        stop_registry(proc)  # one that never answered must not outlive the test
        raise


def stop_registry(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def push(
    host: str,
    repo: str,
    tag: str,
    files: dict[str, bytes],
    auth: tuple[str, str] | None = None,
    token: str = "",
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
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=f"http://{host}/v2/{repo}", auth=auth, headers=headers)

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
        stop_registry(proc)


def test_pull_by_tag_and_digest(registry: str, tmp_path: Path) -> None:
    config_digest = push(registry, "team/app", "1.0", {"hello.txt": b"hi from the registry"})
    store = ImageStore(tmp_path / "images")
    image = pull(store, f"{registry}/team/app:1.0", insecure_registries=[registry])
    assert image.id == config_digest  # the registry's config, byte for byte
    assert (image.layer_dirs[0] / "hello.txt").read_bytes() == b"hi from the registry"
    assert image.config == {"Cmd": ["sh"]}
    assert store.get(f"{registry}/team/app:1.0") == image
    # RepoDigests name the registry's manifest, as `docker images --digests` shows it.
    served = httpx.get(
        f"http://{registry}/v2/team/app/manifests/1.0",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    digest = served.headers["docker-content-digest"]
    assert image.repo_digests == [f"{registry}/team/app@{digest}"]
    # A pull by digest finds the same image and adds no tag.
    by_digest = pull(store, f"{registry}/team/app@{digest}", insecure_registries=[registry])
    assert by_digest.id == image.id and by_digest.repo_tags == [f"{registry}/team/app:1.0"]
    assert store.get(f"{registry}/team/app@{digest}") is not None
    with pytest.raises(PullError, match="not found"):
        pull(store, f"{registry}/team/missing:1", insecure_registries=[registry])
    # Plain HTTP only to registries named insecure: otherwise it is HTTPS, and says why not.
    with pytest.raises(PullError, match="must be named insecure"):
        pull(store, f"{registry}/team/app:1.0")
    with pytest.raises(ValueError, match="invalid reference"):
        pull(store, f"{registry}/Team/App:1.0", insecure_registries=[registry])


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
        stop_registry(proc)


def test_a_tampered_blob_is_refused(registry: str, tmp_path: Path) -> None:
    push(registry, "team/app", "1.0", {"hello.txt": b"the real content"})
    # Change the layer where the registry keeps it: the registry now serves other bytes
    # under the same digest, which is what a compromised mirror would do.
    blobs = (tmp_path / "reg" / "data").rglob("blobs/sha256/*/*/data")
    layer = next(p for p in blobs if p.read_bytes()[:2] == b"\x1f\x8b")  # the gzip layer
    layer.write_bytes(gzip.compress(b"not the layer that was pushed"))
    store = ImageStore(tmp_path / "images")
    with pytest.raises(PullError, match="failed verification"):
        pull(store, f"{registry}/team/app:1.0", insecure_registries=[registry])
    assert store.list() == [] and list((tmp_path / "images" / "layers").iterdir()) == []


class TokenService:
    """The Docker Hub flow's other half: hands out JWTs the registry trusts (ES256, with
    the signing certificate in x5c), anonymous for `public/*`, alice's password otherwise."""

    def __init__(self, tmp: Path) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skiff test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = tmp / "token-issuer.pem"
        self.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.port = free_port()
        self.requests: list[str] = []

    def token(self, service: str, scope: str, user: str) -> str:
        import base64
        import uuid as uuidlib

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        _, repo, actions = scope.split(":")
        allowed = [a for a in actions.split(",") if repo.startswith("public/") or user == "alice"]
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        now = int(time.time())
        claims = {
            "iss": "skiff-test-issuer",
            "sub": user,
            "aud": service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuidlib.uuid4().hex,
            "access": [{"type": "repository", "name": repo, "actions": allowed}],
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def serve(self) -> Iterator[None]:
        import base64
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                service.requests.append(self.path)
                user = ""
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if (name, password) != ("alice", "s3cret"):
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = name
                body = json.dumps(
                    {"token": service.token(query["service"][0], query["scope"][0], user)}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()


def test_bearer_token_flow(tmp_path: Path) -> None:
    """What Docker Hub does: 401 with a Bearer challenge, a token from the realm for the
    repository's pull scope (anonymous for public images), then the pull with it."""
    (tmp_path / "reg").mkdir()
    tokens = TokenService(tmp_path)
    config = (
        "auth:\n  token:\n"
        f"    realm: http://127.0.0.1:{tokens.port}/token\n"
        "    service: skiff-test-registry\n"
        "    issuer: skiff-test-issuer\n"
        f"    rootcertbundle: {tokens.cert_pem}\n"
    )
    serving = tokens.serve()
    next(serving)
    try:
        host, proc = start_registry(tmp_path / "reg", token_auth=config)
    except BaseException:
        serving.close()
        raise
    try:
        for repo in ("public/app", "private/app"):
            push_token = tokens.token(
                "skiff-test-registry", f"repository:{repo}:pull,push", "alice"
            )
            push(host, repo, "1", {"who": repo.encode()}, token=push_token)
        store = ImageStore(tmp_path / "images")
        public = pull(store, f"{host}/public/app:1", insecure_registries=[host])
        assert (public.layer_dirs[0] / "who").read_bytes() == b"public/app"
        assert any("scope=repository%3Apublic%2Fapp%3Apull" in r for r in tokens.requests)
        with pytest.raises(PullError, match="refused access"):  # an anonymous token: no pull
            pull(store, f"{host}/private/app:1", insecure_registries=[host])
        with pytest.raises(PullError, match="token service refused: HTTP 401"):
            pull(
                store,
                f"{host}/private/app:1",
                insecure_registries=[host],
                auth=RegistryAuth("alice", "wrong"),
            )
        private = pull(
            store,
            f"{host}/private/app:1",
            insecure_registries=[host],
            auth=RegistryAuth("alice", "s3cret"),
        )
        assert (private.layer_dirs[0] / "who").read_bytes() == b"private/app"
    finally:
        stop_registry(proc)
        serving.close()


def test_skiff_image_pull_from_the_command_line(registry: str, tmp_path: Path) -> None:
    import sys

    root = Path(__file__).resolve().parents[3]
    push(registry, "team/cli", "2", {"hello": b"from the cli"})

    def skiff_image(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "image", "--image-root", str(tmp_path / "i"), *args],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=120,
        )

    refused = skiff_image("pull", f"{registry}/team/cli:2")  # plain HTTP, not named insecure
    assert refused.returncode == 1 and "must be named insecure" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    pulled = skiff_image("pull", f"{registry}/team/cli:2", "--insecure")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.startswith(f"Pulled: {registry}/team/cli:2 (sha256:")
    listing = skiff_image("ls").stdout
    assert any(line.split()[:2] == [f"{registry}/team/cli", "2"] for line in listing.splitlines())
    missing = skiff_image("pull", f"{registry}/team/nothing:1", "--insecure")
    assert missing.returncode == 1 and "not found in the registry" in missing.stderr
