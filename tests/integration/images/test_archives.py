"""`skiff image load` with the archives users bring from machines that have internet:
`docker save` (classic and Docker 25+ layouts) and OCI archives, written here byte by
byte and also made by the real tools (umoci builds an OCI layout offline from
busybox-static, skopeo turns it into a docker-archive and an oci-archive); and the rest
of `skiff image` (ls, inspect, rm) as a user runs it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from runtime.images.busybox import build_busybox
from runtime.images.store import ImageStore

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists(), reason="needs root and busybox-static"
)
CONFIG = {
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ["echo hi"],
    "Env": ["PATH=/bin"],
    "WorkingDir": "/tmp",
    "User": "nobody",
    "ExposedPorts": {"8080/tcp": {}},
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def busybox_layer(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The uncompressed layer of a busybox image built the offline way."""
    store = ImageStore(tmp_path_factory.mktemp("source"))
    image = build_busybox(store)
    return store.blob(f"sha256:{image.layer_dirs[0].name}").read_bytes()


def image_config(layer: bytes) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-11-01T00:00:00Z",
            "config": CONFIG,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(layer)}"]},
        }
    ).encode()


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def docker_save(
    path: Path, layer: bytes, *, oci_blobs: bool, tags: list[str], gzipped: bool = False
) -> Path:
    config = image_config(layer)
    blob = gzip.compress(layer) if gzipped else layer  # Docker 29's containerd store: gzip
    if oci_blobs:  # Docker 25+: manifest.json over an OCI layout's blobs
        config_name, layer_name = f"blobs/sha256/{sha(config)}", f"blobs/sha256/{sha(blob)}"
    else:  # classic: <config hex>.json and <layer id>/layer.tar
        config_name, layer_name = f"{sha(config)}.json", f"{sha(layer)[:20]}/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": [layer_name]}]
    files = {"manifest.json": json.dumps(manifest).encode(), config_name: config, layer_name: blob}
    if oci_blobs:  # the OCI side of the same archive, which the loader need not read
        files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
        files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    return write_tar(path, files)


def oci_archive(path: Path, layer: bytes, ref_name: str, tamper: bool = False) -> Path:
    """An OCI archive with a gzip layer behind an image index (amd64 and arm64)."""
    gz = gzip.compress(layer)
    config = image_config(layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{sha(config)}",
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{sha(gz)}",
                    "size": len(gz),
                }
            ],
        }
    ).encode()
    platforms = [("arm64", "0" * 64), ("amd64", sha(manifest))]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{digest}",
                    "size": len(manifest),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for arch, digest in platforms
            ],
        }
    ).encode()
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": f"sha256:{sha(index)}",
                "size": len(index),
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }
        ],
    }
    gz_name = sha(gz)
    if tamper:
        gz = gz[:-8] + bytes(8)  # the digest in the manifest no longer matches
    return write_tar(
        path,
        {
            "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
            "index.json": json.dumps(top).encode(),
            f"blobs/sha256/{sha(index)}": index,
            f"blobs/sha256/{sha(manifest)}": manifest,
            f"blobs/sha256/{sha(config)}": config,
            f"blobs/sha256/{gz_name}": gz,
        },
    )


def skiff_image(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "image", "--image-root", str(root), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def inspect(root: Path, name: str) -> dict[str, Any]:
    out = skiff_image(root, "inspect", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


@pytest.mark.parametrize(
    ("oci_blobs", "gzipped"),
    [(False, False), (True, False), (True, True)],
    ids=["classic", "docker25", "docker29-gzip"],
)
def test_load_docker_save(
    tmp_path: Path, busybox_layer: bytes, oci_blobs: bool, gzipped: bool
) -> None:
    archive = docker_save(
        tmp_path / "save.tar",
        busybox_layer,
        oci_blobs=oci_blobs,
        tags=["example.com/team/tool:1.0", "tool:latest"],
        gzipped=gzipped,
    )
    root = tmp_path / "images"
    out = skiff_image(root, "load", str(archive))
    assert out.returncode == 0, out.stderr
    assert "Loaded image: example.com/team/tool:1.0" in out.stdout
    listing = skiff_image(root, "ls").stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "SIZE"]
    assert any(line.split()[:2] == ["docker.io/library/tool", "latest"] for line in listing)
    info = inspect(root, "example.com/team/tool:1.0")
    assert info["Id"] == f"sha256:{sha(image_config(busybox_layer))}"  # Docker's image id
    assert info["Config"]["User"] == "nobody"
    assert info["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    image = ImageStore(root).get("tool")
    assert image is not None and (image.layer_dirs[0] / "bin" / "busybox").is_file()


def test_load_oci_archive_picks_this_architecture(tmp_path: Path, busybox_layer: bytes) -> None:
    archive = oci_archive(tmp_path / "oci.tar", busybox_layer, "1.0")
    root = tmp_path / "images"
    unnamed = skiff_image(root, "load", str(archive))
    assert unnamed.returncode == 1
    assert unnamed.stderr.strip() == (
        "skiff image: the archive does not name its image: give one with --name"
    )
    out = skiff_image(root, "load", str(archive), "--name", "example.com/team/tool")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Loaded image: example.com/team/tool:1.0"
    info = inspect(root, "example.com/team/tool:1.0")
    assert info["Architecture"] == "amd64" and info["Config"]["WorkingDir"] == "/tmp"
    # From standard input, as in `docker save tool | ssh node skiff image load -`.
    again = subprocess.run(
        [
            *[sys.executable, "-m", "cli.main", "image", "--image-root", str(root)],
            *["load", "-", "--name", "example.com/team/other"],
        ],
        input=archive.read_bytes(),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert inspect(root, "example.com/team/other:1.0")["Id"] == info["Id"]


def test_bad_archives_are_refused_and_store_nothing(tmp_path: Path, busybox_layer: bytes) -> None:
    root = tmp_path / "images"
    tampered = oci_archive(tmp_path / "bad.tar", busybox_layer, "example.com/x:1", tamper=True)
    out = skiff_image(root, "load", str(tampered))
    assert out.returncode == 1
    assert "failed verification: its content does not match" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file")
    junk = skiff_image(root, "load", str(tmp_path / "junk.tar"))
    assert junk.returncode == 1 and "is not a readable image archive" in junk.stderr
    missing = skiff_image(root, "load", str(tmp_path / "nope.tar"))
    assert missing.returncode == 1 and "nope.tar: no such file" in missing.stderr
    bad_name = skiff_image(root, "load", str(tampered), "--name", "Not A Name")
    assert bad_name.returncode == 1 and "invalid reference" in bad_name.stderr
    assert skiff_image(root, "ls", "-q").stdout == ""
    assert list((root / "layers").iterdir()) == []


def test_rm_and_inspect_errors(tmp_path: Path, busybox_layer: bytes) -> None:
    root = tmp_path / "images"
    build = skiff_image(root, "build-busybox")
    assert build.returncode == 0, build.stderr
    archive = docker_save(tmp_path / "s.tar", busybox_layer, oci_blobs=False, tags=["a/b:1"])
    assert skiff_image(root, "load", str(archive)).returncode == 0
    removed = skiff_image(root, "rm", "a/b:1")
    assert removed.returncode == 0 and "Untagged: docker.io/a/b:1" in removed.stdout
    gone = skiff_image(root, "inspect", "a/b:1")
    assert gone.returncode == 1
    assert gone.stderr.strip() == (
        "skiff image: image 'a/b:1' not found on this node (see `skiff image ls`)"
    )
    # The two images share their layer: it stays, unpacked, for busybox.
    busybox = inspect(root, "busybox")
    assert busybox["RepoTags"] == ["docker.io/library/busybox:latest"]
    assert (root / "layers" / busybox["Layers"][0].split(":")[1] / "bin" / "busybox").is_file()


@pytest.fixture(scope="module")
def tool_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Archives made by skopeo from an OCI layout that umoci built offline, as in
    /work/shared/notes: busybox-static's binary and applet links in one layer."""
    if not shutil.which("umoci") or not shutil.which("skopeo"):
        pytest.skip("needs umoci and skopeo (scripts/install.sh installs them)")
    work = tmp_path_factory.mktemp("tools")
    layout, bundle = work / "layout", work / "bundle"

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=work)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"

    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:busybox")
    run("umoci", "unpack", "--image", f"{layout}:busybox", str(bundle))
    bin_dir = bundle / "rootfs" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", bin_dir / "busybox")
    for applet in ("sh", "echo", "cat", "ls"):
        (bin_dir / applet).symlink_to("busybox")
    run("umoci", "repack", "--image", f"{layout}:busybox", str(bundle))
    run(
        "umoci", "config", "--image", f"{layout}:busybox",
        "--config.cmd", "sh", "--config.env", "PATH=/bin", "--config.workingdir", "/tmp",
        "--config.exposedports", "8080/tcp",
    )  # fmt: skip
    docker, oci = work / "docker-archive.tar", work / "oci-archive.tar"
    run("skopeo", "copy", "-q", f"oci:{layout}:busybox",
        f"docker-archive:{docker}:example.com/tools/busybox:1.36")  # fmt: skip
    run("skopeo", "copy", "-q", f"oci:{layout}:busybox", f"oci-archive:{oci}:1.36")
    return {"docker": docker, "oci": oci}


def test_load_archives_made_by_skopeo_from_an_umoci_image(
    tmp_path: Path, tool_archives: dict[str, Path]
) -> None:
    with tarfile.open(tool_archives["docker"]) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    config_id = "sha256:" + manifest[0]["Config"].removesuffix(".json")
    # Each into a node of its own: what one archive brings, alone.
    docker_root, oci_root = tmp_path / "from-docker-archive", tmp_path / "from-oci-archive"
    out = skiff_image(docker_root, "load", str(tool_archives["docker"]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Loaded image: example.com/tools/busybox:1.36"
    out = skiff_image(oci_root, "load", str(tool_archives["oci"]), "--name", "example.com/t/oci")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Loaded image: example.com/t/oci:1.36"
    for root, name in (
        (docker_root, "example.com/tools/busybox:1.36"),
        (oci_root, "example.com/t/oci:1.36"),
    ):
        info = inspect(root, name)
        assert info["Id"] == config_id  # one image, whichever archive brought it
        assert info["Config"]["Cmd"] == ["sh"] and info["Config"]["WorkingDir"] == "/tmp"
        assert "PATH=/bin" in info["Config"]["Env"]
        assert info["Config"]["ExposedPorts"] == {"8080/tcp": {}}
        image = ImageStore(root).get(name)
        assert image is not None
        layer = image.layer_dirs[-1] / "bin"
        assert (layer / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
        assert os.readlink(layer / "sh") == "busybox"
