"""A container's root filesystem: the image's layers under overlayfs, plus its own upper dir.

Each container writes into its own upper directory, so a write in one
container is seen neither by other containers of the same image nor by the
image itself.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from runtime.runc import linux

from .store import Image


def mount_rootfs(image: Image, container_dir: Path) -> Path:
    rootfs, upper, work = (container_dir / n for n in ("rootfs", "upper", "work"))
    for d in (rootfs, upper, work):
        d.mkdir(parents=True, exist_ok=True)
    # overlayfs lists lower directories top-most first.
    lower = ":".join(str(d) for d in reversed(image.layer_dirs))
    linux.mount(
        "overlay", str(rootfs), "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}"
    )
    return rootfs


def unmount_rootfs(container_dir: Path) -> None:
    rootfs = container_dir / "rootfs"
    with contextlib.suppress(OSError):
        linux.umount2(str(rootfs), linux.MNT_DETACH)
    for name in ("rootfs", "upper", "work"):
        shutil.rmtree(container_dir / name, ignore_errors=True)
