"""A node's image store, laid out like an OCI image layout.

    <root>/blobs/sha256/<hex>   manifests, configs and layer tars, by digest
    <root>/layers/<diffid hex>/ each layer unpacked once, shared by every image using it
    <root>/names.json           image names -> manifest digest (written atomically, locked)
    <root>/origins.json         manifest digest -> the registry's digests ("repo@sha256:...")

An image's id is the digest of its config, as in Docker and CRI. A name is a
tag (`repo:tag`) or a digest reference (`repo@sha256:...`, what a pull by
digest stores). Layers are kept uncompressed, so a pulled image's manifest
here is not the registry's; origins.json keeps the registry's manifest digest,
which is what `RepoDigests` shows, as with Docker and containerd.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .layers import unpack
from .reference import normalize

T = TypeVar("T")
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Image:
    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    config: dict[str, Any]
    layer_dirs: list[Path] = field(default_factory=list)  # lowest first
    manifest_digest: str = ""  # of the manifest in this store


def _scratch(path: Path) -> Path:
    """A name beside `path` that no other writer uses: two pulls of one image (two pods
    starting at once) each write their own copy and rename it into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "layers").mkdir(exist_ok=True)

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def _put_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob(digest)
        if not path.exists():
            tmp = _scratch(path)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return digest

    def _names(self, change: Callable[[dict[str, str]], T] | None = None) -> Any:
        return self._locked("names.json", change)

    def _origins(self, change: Callable[[dict[str, list[str]]], T] | None = None) -> Any:
        return self._locked("origins.json", change)

    def _locked(self, file: str, change: Callable[[Any], T] | None) -> Any:
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.root / file
            data = json.loads(path.read_text()) if path.exists() else {}
            if change is None:
                return data
            result = change(data)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, path)
            return result

    def add(
        self,
        name: str,
        layer_tars: list[Path],
        config: dict[str, Any],
        config_blob: bytes | None = None,
        origin_digest: str = "",
    ) -> Image:
        """Store an image made of uncompressed layer tars (lowest first) and a config.

        `config_blob` is an image config as a registry served it, kept byte for byte
        so that the image id stays the registry's config digest; `origin_digest` is
        the registry's manifest digest, for RepoDigests.
        """
        layers, diff_ids = [], []
        for tar in layer_tars:
            digest = digest_file(tar)
            if not self.blob(digest).exists():
                tmp = _scratch(self.blob(digest))
                shutil.copyfile(tar, tmp)
                os.replace(tmp, self.blob(digest))  # whole or not at all, for other readers
            layers.append({"mediaType": LAYER_TYPE, "digest": digest, "size": tar.stat().st_size})
            diff_ids.append(digest)  # uncompressed: the blob digest is the diff id
            layer_dir = self.root / "layers" / digest.split(":", 1)[1]
            if not layer_dir.exists():  # unpacked once, shared by every image with it
                partial = _scratch(layer_dir)
                try:
                    unpack(tar, partial)
                    os.rename(partial, layer_dir)
                except OSError:
                    if not layer_dir.is_dir():  # not another pull of the same layer, done first
                        raise
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
        if config_blob is not None:
            if json.loads(config_blob).get("rootfs", {}).get("diff_ids") != diff_ids:
                raise ValueError("the image config's diff_ids do not match its layers")
            config_digest = self._put_bytes(config_blob)
        else:
            image_config = {
                "architecture": "amd64",
                "os": "linux",
                "config": config,
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
            config_digest = self._put_bytes(json.dumps(image_config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": CONFIG_TYPE,
                "digest": config_digest,
                "size": self.blob(config_digest).stat().st_size,
            },
            "layers": layers,
        }
        manifest_digest = self._put_bytes(json.dumps(manifest, sort_keys=True).encode())
        reference = normalize(name)
        self._names(lambda names: names.__setitem__(str(reference), manifest_digest))
        if origin_digest:
            origin = f"{reference.name}@{origin_digest}"
            self._origins(
                lambda o: o.__setitem__(
                    manifest_digest, sorted({*o.get(manifest_digest, []), origin})
                )
            )
        image = self.get(name)
        assert image is not None
        return image

    def tag(self, ref: str, name: str) -> Image:
        """Give an image another name, as `docker tag` does."""
        image = self.get(ref)
        if image is None:
            raise KeyError(f"image {ref!r} not found")
        manifest_digest = image.manifest_digest
        self._names(lambda names: names.__setitem__(str(normalize(name)), manifest_digest))
        tagged = self.get(name)
        assert tagged is not None
        return tagged

    def _image(
        self, manifest_digest: str, names: dict[str, str], origins: dict[str, list[str]]
    ) -> Image:
        manifest = json.loads(self.blob(manifest_digest).read_text())
        config = json.loads(self.blob(manifest["config"]["digest"]).read_text())
        mine = [n for n, d in names.items() if d == manifest_digest]
        tags = sorted(n for n in mine if "@" not in n)
        digests = {n for n in mine if "@" in n} | set(origins.get(manifest_digest, []))
        repos_with_digest = {d.split("@", 1)[0] for d in digests}
        for repo in {t.rsplit(":", 1)[0] for t in tags} - repos_with_digest:
            digests.add(f"{repo}@{manifest_digest}")  # built or loaded here: our manifest
        return Image(
            id=manifest["config"]["digest"],
            repo_tags=tags,
            repo_digests=sorted(digests),
            manifest_digest=manifest_digest,
            size=sum(int(layer["size"]) for layer in manifest["layers"]),
            config=config.get("config") or {},
            layer_dirs=[
                self.root / "layers" / layer["digest"].split(":", 1)[1]
                for layer in manifest["layers"]
            ],
        )

    def get(self, ref: str) -> Image | None:
        """By name ("busybox", "docker.io/library/busybox:latest"), by id, or id prefix."""
        names, origins = self._names(), self._origins()
        try:
            key = str(normalize(ref))
        except ValueError:
            key = ""
        if key in names:
            return self._image(names[key], names, origins)
        for manifest_digest, repo_digests in origins.items():  # the registry's digest
            if key in repo_digests and manifest_digest in names.values():
                return self._image(manifest_digest, names, origins)
        wanted = ref if ref.startswith("sha256:") else f"sha256:{ref}"
        for digest in set(names.values()):
            image = self._image(digest, names, origins)
            if image.id.startswith(wanted):
                return image
        return None

    def list(self) -> list[Image]:
        names, origins = self._names(), self._origins()
        return [self._image(d, names, origins) for d in sorted(set(names.values()))]

    def remove(self, ref: str) -> None:
        """Untag; blobs and unpacked layers no image uses any more are deleted."""
        image = self.get(ref)
        if image is None:
            raise KeyError(f"image {ref!r} not found")
        self._names(
            lambda names: [
                names.pop(n) for n, d in list(names.items()) if d == image.manifest_digest
            ]
        )
        self._origins(lambda o: o.pop(image.manifest_digest, None))
        used: set[str] = set()
        for digest in set(self._names().values()):
            manifest = json.loads(self.blob(digest).read_text())
            used |= {
                digest,
                manifest["config"]["digest"],
                *(layer["digest"] for layer in manifest["layers"]),
            }
        # Dot-names are another pull's work in progress (see _scratch): not ours to remove.
        for path in (self.root / "blobs" / "sha256").iterdir():
            if f"sha256:{path.name}" not in used and not path.name.startswith("."):
                path.unlink()
        for layer_dir in (self.root / "layers").iterdir():
            if f"sha256:{layer_dir.name}" not in used and not layer_dir.name.startswith("."):
                shutil.rmtree(layer_dir)

    def fs_info(self) -> tuple[int, int]:
        """Bytes and inodes used by the store (CRI ImageFsInfo)."""
        size = inodes = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            inodes += len(dirnames) + len(filenames)
            for f in filenames:
                try:
                    size += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return size, inodes
