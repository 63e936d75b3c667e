"""Unpacking layer tars into directories that overlayfs can stack.

OCI whiteouts become overlayfs ones: `.wh.<name>` turns into a 0/0 character
device named <name> (the file is hidden in lower layers), and `.wh..wh..opq`
marks its directory opaque with the `trusted.overlay.opaque` xattr. Entries
that would land outside the layer directory (`../`, absolute paths, links
pointing out) are refused.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class UnsafeLayer(ValueError):
    """A layer that tries to write outside its own directory."""


def _safe(target: Path, name: str) -> Path:
    path = (target / name.lstrip("/")).resolve()
    if not str(path).startswith(str(target.resolve())):
        raise UnsafeLayer(f"layer entry {name!r} escapes the layer directory")
    return path


def unpack(tar_path: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar.getmembers():
            name = os.path.normpath(member.name)
            if name.startswith("..") or os.path.isabs(member.name):
                raise UnsafeLayer(f"layer entry {member.name!r} escapes the layer directory")
            base = os.path.basename(name)
            parent = _safe(target, os.path.dirname(name)) if os.path.dirname(name) else target
            if base == OPAQUE:
                parent.mkdir(parents=True, exist_ok=True)
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
                continue
            if base.startswith(WHITEOUT):
                parent.mkdir(parents=True, exist_ok=True)
                hidden = parent / base[len(WHITEOUT) :]
                if hidden.exists() or hidden.is_symlink():
                    hidden.unlink()
                os.mknod(hidden, 0o600 | 0o020000, os.makedev(0, 0))
                continue
            if member.issym() and os.path.isabs(member.linkname) is False:
                _safe(target, os.path.join(os.path.dirname(name), member.linkname))
            if member.islnk():
                _safe(target, member.linkname)
            tar.extract(member, target, set_attrs=True, numeric_owner=True, filter="fully_trusted")
