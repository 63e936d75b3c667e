"""Pulling images over the OCI distribution API (what `docker pull` speaks).

`GET /v2/` finds out how to authenticate: nothing, basic auth, or the bearer
token flow Docker Hub uses (`WWW-Authenticate: Bearer realm=...,service=...`,
then a token for `repository:<name>:pull`). The manifest is asked for in every
format registries serve; an index or manifest list picks linux and this
machine's architecture. Every blob's digest is checked before anything is
stored, and a mismatch stores nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import platform
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .reference import Reference, normalize
from .store import Image, ImageStore

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
LISTS = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


class PullError(Exception):
    """A pull that failed, with what the user needs to know."""


class ImageNotFound(PullError):
    """The registry has no such repository, tag or digest."""


@dataclass(frozen=True)
class RegistryAuth:
    username: str = ""
    password: str = ""
    token: str = ""


def arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Registry:
    def __init__(
        self, host: str, repository: str, auth: RegistryAuth | None, insecure: bool
    ) -> None:
        scheme = "http" if insecure else "https"
        api_host = "registry-1.docker.io" if host == "docker.io" else host
        self.base = f"{scheme}://{api_host}/v2/{repository}"
        self.repository, self.auth = repository, auth or RegistryAuth()
        self.http = httpx.Client(timeout=60, follow_redirects=True)
        self.headers: dict[str, str] = {}
        if self.auth.token:
            self.headers["Authorization"] = f"Bearer {self.auth.token}"
        else:
            self._login(f"{scheme}://{api_host}/v2/")

    def _login(self, ping: str) -> None:
        r = self.http.get(ping)
        if r.status_code != 401:
            return
        challenge = r.headers.get("www-authenticate", "")
        basic = (self.auth.username, self.auth.password) if self.auth.username else None
        if challenge.lower().startswith("basic"):
            if basic is None:
                raise PullError("the registry wants a username and password")
            self.http.auth = httpx.BasicAuth(*basic)
            if self.http.get(ping).status_code == 401:
                raise PullError("the registry refused the username or password")
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm:
            raise PullError(f"unsupported registry authentication: {challenge!r}")
        params["scope"] = f"repository:{self.repository}:pull"
        t = self.http.get(realm, params=params, auth=httpx.BasicAuth(*basic) if basic else None)
        if t.status_code != 200:
            raise PullError(f"the registry's token service refused: HTTP {t.status_code}")
        token = t.json().get("token") or t.json().get("access_token")
        self.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, accept: str = "") -> httpx.Response:
        headers = dict(self.headers)
        if accept:
            headers["Accept"] = accept
        r = self.http.get(f"{self.base}/{path}", headers=headers)
        if r.status_code == 401:
            raise PullError("the registry refused access (401): check the credentials")
        if r.status_code == 404:
            raise ImageNotFound(f"not found in the registry: {self.repository} {path}")
        if r.status_code >= 400:
            raise PullError(f"the registry answered HTTP {r.status_code} for {path}")
        return r

    def blob(self, digest: str) -> bytes:
        data = self.get(f"blobs/{digest}").content
        if _sha256(data) != digest:
            raise PullError(f"blob {digest} failed verification: its content does not match")
        return data


def pull(
    store: ImageStore,
    ref: str,
    *,
    auth: RegistryAuth | None = None,
    insecure_registries: Sequence[str] = (),
) -> Image:
    """Pull `ref` into the store. ValueError for a bad reference; PullError, with what
    went wrong in words, for everything else."""
    reference = normalize(ref)
    insecure = reference.registry in insecure_registries
    try:
        return _pull(store, ref, reference, auth, insecure)
    except httpx.HTTPError as e:
        scheme = "http" if insecure else "https"
        hint = (
            "; a registry that speaks plain HTTP must be named insecure"
            if not insecure and isinstance(e, httpx.ConnectError) and "SSL" in str(e)
            else ""
        )
        raise PullError(f"cannot reach {scheme}://{reference.registry}: {e}{hint}") from e


def _pull(
    store: ImageStore,
    ref: str,
    reference: Reference,
    auth: RegistryAuth | None,
    insecure: bool,
) -> Image:
    registry = _Registry(reference.registry, reference.repository, auth, insecure)
    wanted = reference.digest or reference.tag
    r = registry.get(f"manifests/{wanted}", ACCEPT)
    manifest_bytes = r.content
    # What you would pull it by: the digest of what the registry answered (an index for a
    # multi-platform image), as Docker and containerd record it in RepoDigests.
    origin_digest = _sha256(manifest_bytes)
    if reference.digest and origin_digest != reference.digest:
        raise PullError(f"manifest does not match the digest {reference.digest}")
    manifest = json.loads(manifest_bytes)
    if manifest.get("mediaType") in LISTS or "manifests" in manifest:
        machine_arch = arch()
        chosen = next(
            (
                m
                for m in manifest.get("manifests") or []
                if (m.get("platform") or {}).get("os") == "linux"
                and (m.get("platform") or {}).get("architecture") == machine_arch
            ),
            None,
        )
        if chosen is None:
            raise PullError(f"no linux/{machine_arch} image in {ref}")
        manifest_bytes = registry.get(f"manifests/{chosen['digest']}", ACCEPT).content
        if _sha256(manifest_bytes) != chosen["digest"]:
            raise PullError("the platform manifest failed verification")
        manifest = json.loads(manifest_bytes)
    config_blob = registry.blob(manifest["config"]["digest"])
    config = json.loads(config_blob)
    with tempfile.TemporaryDirectory() as tmp:
        tars = []
        for i, layer in enumerate(manifest["layers"]):
            data = registry.blob(layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            path = Path(tmp) / f"{i}.tar"
            path.write_bytes(data)
            tars.append(path)
        try:
            return store.add(
                str(reference),  # repo:tag, or repo@digest for a pull by digest
                tars,
                config.get("config") or {},
                config_blob=config_blob,
                origin_digest=origin_digest,
            )
        except ValueError as e:
            raise PullError(f"{ref}: {e}") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
