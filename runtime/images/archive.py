"""Loading image archives: the air-gapped path (save where there is internet, copy, load).

Two formats are understood, told apart by what the tar holds:
- `docker save`: a `manifest.json` listing each image's config file, layer
  files and tags. Older Docker writes `<id>/layer.tar` and `<config hex>.json`;
  Docker 25+ writes the same `manifest.json` over an OCI layout's blobs.
- OCI archives (`oci-layout` + `index.json` + `blobs/sha256/`), as written by
  `skopeo copy ... oci-archive:`, `podman save --format oci-archive` or
  `docker buildx --output type=oci`. An index inside the index picks linux and
  this machine's architecture, as a pull does.

Nothing is trusted: the archive is unpacked with tarfile's `data` filter (no
paths outside the scratch directory, no devices), every blob named by digest
must hash to that digest, and every layer must match its diff id in the image
config, or nothing is stored.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .pull import arch as node_arch
from .reference import normalize
from .store import Image, ImageStore, digest_file

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


class ArchiveError(ValueError):
    """An archive that cannot be loaded, with what is wrong with it."""


@dataclass(frozen=True)
class _Entry:
    config: Path
    layers: list[Path]
    names: list[str]


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise ArchiveError(f"the archive names {name!r}, which it does not contain")
    return path


def _blob(root: Path, digest: str) -> Path:
    """A blob of the OCI layout, checked against its digest."""
    algorithm, _, hex_ = digest.partition(":")
    if algorithm != "sha256" or len(hex_) != 64:
        raise ArchiveError(f"unsupported digest {digest!r}")
    path = _inside(root, f"blobs/sha256/{hex_}")
    if digest_file(path) != digest:
        raise ArchiveError(f"blob {digest} failed verification: its content does not match")
    return path


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except ValueError as e:
        raise ArchiveError(f"{path.name} is not valid JSON: {e}") from e


def _docker_entries(root: Path) -> list[_Entry]:
    manifest = _json(root / "manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise ArchiveError("manifest.json lists no images")
    entries = []
    for item in manifest:
        config = _inside(root, item["Config"])
        if item["Config"].startswith("blobs/"):
            _blob(root, "sha256:" + Path(item["Config"]).name)
        else:  # <config hex>.json: the name is the image id
            expected = "sha256:" + Path(item["Config"]).stem
            if len(expected) == 71 and digest_file(config) != expected:
                raise ArchiveError(f"{item['Config']} failed verification")
        layers = [_inside(root, name) for name in item.get("Layers") or []]
        entries.append(_Entry(config, layers, list(item.get("RepoTags") or [])))
    return entries


def _platform_manifest(root: Path, descriptor: dict[str, Any]) -> dict[str, Any]:
    doc = _json(_blob(root, descriptor["digest"]))
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        arch = node_arch()
        for m in doc.get("manifests") or []:
            platform = m.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == arch:
                return _platform_manifest(root, m)
        raise ArchiveError(f"the archive has no linux/{arch} image")
    return doc


def _oci_entries(root: Path, name: str) -> list[_Entry]:
    index = _json(root / "index.json")
    entries = []
    for descriptor in index.get("manifests") or []:
        annotations = descriptor.get("annotations") or {}
        ref = annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME) or ""
        if ref and not any(c in ref for c in "/:") and name:
            ref = f"{normalize(name).name}:{ref}"  # a bare tag: it names a tag of --name
        elif ref and not any(c in ref for c in "/:"):
            ref = ""
        manifest = _platform_manifest(root, descriptor)
        config = _blob(root, manifest["config"]["digest"])
        layers = []
        for layer in manifest.get("layers") or []:
            if "zstd" in layer.get("mediaType", ""):
                raise ArchiveError("zstd-compressed layers are not supported")
            layers.append(_blob(root, layer["digest"]))
        entries.append(_Entry(config, layers, [ref] if ref else []))
    if not entries:
        raise ArchiveError("index.json lists no images")
    return entries


def _uncompressed(layer: Path, scratch: Path) -> Path:
    with open(layer, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        out = scratch / f"{layer.name}.tar"
        with gzip.open(layer, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return out
    if magic == b"\x28\xb5\x2f\xfd":
        raise ArchiveError("zstd-compressed layers are not supported")
    return layer


def load(store: ImageStore, archive: Path, name: str = "") -> list[Image]:
    """Store every image in a docker-save or OCI archive; `name` tags the images the
    archive leaves unnamed (and completes bare tags in OCI archives)."""
    if name:
        normalize(name)  # a bad --name fails before any work
    with tempfile.TemporaryDirectory(prefix="skiff-load-") as tmp:
        root = Path(tmp) / "archive"
        root.mkdir()
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(root, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise ArchiveError(f"{archive} is not a readable image archive: {e}") from e
        if (root / "manifest.json").is_file():
            entries = _docker_entries(root)
        elif (root / "index.json").is_file():
            entries = _oci_entries(root, name)
        else:
            raise ArchiveError(
                f"{archive} is neither a `docker save` archive (no manifest.json) "
                "nor an OCI archive (no index.json)"
            )
        scratch = Path(tmp) / "layers"
        scratch.mkdir()
        images = []
        for entry in entries:
            names = entry.names or ([name] if name else [])
            if not names:
                raise ArchiveError("the archive does not name its image: give one with --name")
            config_blob = entry.config.read_bytes()
            config = json.loads(config_blob)
            tars = [_uncompressed(layer, scratch) for layer in entry.layers]
            try:
                image = store.add(
                    names[0], tars, config.get("config") or {}, config_blob=config_blob
                )
            except ValueError as e:
                raise ArchiveError(str(e)) from e
            for extra in names[1:]:
                image = store.tag(image.id, extra)
            images.append(image)
        return images
