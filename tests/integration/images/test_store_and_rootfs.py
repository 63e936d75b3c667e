"""The image store, overlay root filesystems and whiteouts, on real overlayfs, and a
container run by skiff-runc from an image."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from runtime.cgroups import remove_tree
from runtime.images.busybox import build_busybox
from runtime.images.rootfs import mount_rootfs, unmount_rootfs
from runtime.images.store import ImageStore

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists(), reason="needs root and busybox-static"
)


def layer(path: Path, entries: dict[str, bytes | None]) -> Path:
    """A layer tar: name -> content (None for a directory)."""
    with tarfile.open(path, "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_copy_on_write_between_containers(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    image = build_busybox(store)
    assert store.get("busybox") == image and store.get(image.id[7:19]) == image
    assert image.repo_tags == ["docker.io/library/busybox:latest"]
    one, two = tmp_path / "c1", tmp_path / "c2"
    try:
        r1, r2 = mount_rootfs(image, one), mount_rootfs(image, two)
        (r1 / "tmp" / "mine").write_text("only in one")
        (r1 / "etc" / "passwd").write_text("changed\n")
        assert not (r2 / "tmp" / "mine").exists()
        assert (r2 / "etc" / "passwd").read_text().startswith("root:")
        assert (image.layer_dirs[0] / "etc" / "passwd").read_text().startswith("root:")
    finally:
        unmount_rootfs(one)
        unmount_rootfs(two)
    assert not (one / "rootfs").exists()


def test_whiteouts_stack_under_overlayfs(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    base = layer(
        tmp_path / "l1.tar",
        {"a": None, "a/file": b"1", "a/dir": None, "a/dir/x": b"x", "keep": b"k"},
    )
    top = layer(
        tmp_path / "l2.tar",
        {"a": None, "a/.wh.file": b"", "a/dir": None, "a/dir/.wh..wh..opq": b"", "a/dir/y": b"y"},
    )
    image = store.add("example.com/stacked:1", [base, top], {"Cmd": ["sh"]})
    container = tmp_path / "c"
    try:
        rootfs = mount_rootfs(image, container)
        assert not (rootfs / "a" / "file").exists()
        assert sorted(os.listdir(rootfs / "a" / "dir")) == ["y"]
        assert (rootfs / "keep").read_text() == "k"
    finally:
        unmount_rootfs(container)


def test_layers_shared_and_removed_when_unused(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    shared = layer(tmp_path / "base.tar", {"base": b"b"})
    one = store.add("example.com/one:1", [shared, layer(tmp_path / "1.tar", {"one": b"1"})], {})
    two = store.add("example.com/two:1", [shared, layer(tmp_path / "2.tar", {"two": b"2"})], {})
    assert one.layer_dirs[0] == two.layer_dirs[0]  # unpacked once
    store.remove("example.com/one:1")
    assert store.get("example.com/one:1") is None
    assert two.layer_dirs[0].exists() and not one.layer_dirs[1].exists()
    store.remove("example.com/two:1")
    assert list((tmp_path / "images" / "layers").iterdir()) == []


def test_skiff_runc_runs_a_container_from_the_image(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    image = build_busybox(store)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    try:
        rootfs = mount_rootfs(image, bundle)
        subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
        config = json.loads((bundle / "config.json").read_text())
        config["root"] = {"path": str(rootfs), "readonly": False}
        config["process"].update(
            terminal=False, args=["sh", "-c", "head -1 /etc/passwd"], env=image.config["Env"]
        )
        config["linux"]["cgroupsPath"] = f"/{parent}/ctr"
        (bundle / "config.json").write_text(json.dumps(config))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "runtime.runc.main",
                "--root",
                str(tmp_path / "state"),
                "run",
                "--bundle",
                str(bundle),
                "img",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "root:x:0:0:root:/root:/bin/sh"
    finally:
        unmount_rootfs(bundle)
        remove_tree(parent)
        shutil.rmtree(bundle, ignore_errors=True)


def test_the_same_image_stored_twice_at_once(tmp_path: Path) -> None:
    """Two pods starting at once pull the same image: both succeed, one copy is kept."""
    from concurrent.futures import ThreadPoolExecutor

    store = ImageStore(tmp_path / "images")
    files = {f"dir{i}/file{j}": bytes([i, j]) * 500 for i in range(20) for j in range(20)}
    tar = layer(tmp_path / "big.tar", {f"dir{i}": None for i in range(20)} | files)
    with ThreadPoolExecutor(4) as pool:
        images = list(
            pool.map(lambda n: store.add(f"example.com/same:{n}", [tar], {"Cmd": ["sh"]}), range(4))
        )
    assert len({i.id for i in images}) == 1
    unpacked = images[0].layer_dirs[0]
    assert (unpacked / "dir19" / "file19").read_bytes() == bytes([19, 19]) * 500
    leftovers = [p.name for d in ("layers", "blobs/sha256") for p in (store.root / d).iterdir()]
    assert not [n for n in leftovers if n.startswith(".")]  # no scratch left behind
