"""A busybox image built on the node from Debian's busybox-static, with no network."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .store import Image, ImageStore

BUSYBOX = Path("/bin/busybox")
NAME = "docker.io/library/busybox:latest"


def _applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return [a for a in out.stdout.split() if a and a != "busybox"]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def build_busybox(store: ImageStore, name: str = NAME) -> Image:
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, "w") as tar:
            for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "home"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            tar.add(str(BUSYBOX), "bin/busybox")
            for applet in _applets():
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
            _add_bytes(
                tar,
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            )
            _add_bytes(tar, "etc/group", b"root:x:0:\nnobody:x:65534:\n")
        config = {
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        }
        return store.add(name, [layer], config)
