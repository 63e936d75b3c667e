"""`skiff image`: the node's image store, from the command line.

    skiff image ls [-q]                    what the node has (as `docker images`)
    skiff image load FILE [--name NAME]    a `docker save` or OCI archive ('-' reads stdin)
    skiff image pull NAME [--username U --password P] [--insecure]
    skiff image inspect NAME...            the image config as JSON (Entrypoint, Cmd, Env,
                                           WorkingDir, User, ExposedPorts, ...)
    skiff image rm NAME...                 untag; layers no image uses any more are deleted
    skiff image build-busybox              busybox from Debian's busybox-static, no network

It works on the store directly (under a file lock, as the runtime daemon does),
so images can be loaded before the node runs, which is the air-gapped path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from .archive import ArchiveError, load
from .busybox import build_busybox
from .pull import PullError, RegistryAuth, pull
from .store import Image, ImageStore

DEFAULT_ROOT = Path("/var/lib/skiff/images")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{n}B"
        n /= 1000  # type: ignore[assignment]
    return f"{n}B"


def _rows(images: list[Image]) -> list[tuple[str, str, str, str]]:
    rows = []
    for image in images:
        for tag in image.repo_tags:
            repository, _, version = tag.rpartition(":")
            rows.append((repository, version, image.id[7:19], _size(image.size)))
    return sorted(rows)


def cmd_ls(store: ImageStore, quiet: bool) -> int:
    images = store.list()
    if quiet:
        for image in images:
            print(image.id)
        return 0
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "SIZE"), *_rows(images)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "   " + r[3])
    return 0


def _get(store: ImageStore, ref: str) -> Image:
    image = store.get(ref)
    if image is None:
        raise LookupError(f"image {ref!r} not found on this node (see `skiff image ls`)")
    return image


def cmd_inspect(store: ImageStore, refs: list[str]) -> int:
    out = []
    for ref in refs:
        image = _get(store, ref)
        manifest = json.loads(store.blob(image.manifest_digest).read_text())
        config = json.loads(store.blob(image.id).read_text())
        out.append(
            {
                "Id": image.id,
                "RepoTags": image.repo_tags,
                "RepoDigests": image.repo_digests,
                "Created": config.get("created", ""),
                "Architecture": config.get("architecture", ""),
                "Os": config.get("os", ""),
                "Size": image.size,
                "Config": image.config,
                "RootFS": config.get("rootfs", {}),
                "Layers": [layer["digest"] for layer in manifest["layers"]],
            }
        )
    print(json.dumps(out, indent=4))
    return 0


def cmd_rm(store: ImageStore, refs: list[str]) -> int:
    for ref in refs:
        image = _get(store, ref)
        store.remove(ref)
        for tag in image.repo_tags:
            print(f"Untagged: {tag}")
        print(f"Deleted: {image.id}")
    return 0


def cmd_load(store: ImageStore, file: str, name: str) -> int:
    if file == "-":
        with tempfile.NamedTemporaryFile(prefix="skiff-load-", suffix=".tar") as tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp)
            tmp.flush()
            images = load(store, Path(tmp.name), name)
    else:
        if not Path(file).is_file():
            raise LookupError(f"{file}: no such file")
        images = load(store, Path(file), name)
    for image in images:
        for tag in image.repo_tags:
            print(f"Loaded image: {tag}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="skiff image", description=__doc__.split("\n")[0])
    p.add_argument("--image-root", type=Path, default=DEFAULT_ROOT, help="the node's image store")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", aliases=["list"], help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    ld = sub.add_parser("load", help="load a `docker save` or OCI archive")
    ld.add_argument("file", help="the archive, or - for standard input")
    ld.add_argument("--name", default="", help="a name for images the archive leaves unnamed")
    pl = sub.add_parser("pull", help="pull from a registry")
    pl.add_argument("name")
    pl.add_argument("--username", default="")
    pl.add_argument("--password", default="")
    pl.add_argument("--insecure", action="store_true", help="plain HTTP to this registry")
    sub.add_parser("inspect", help="an image's config as JSON").add_argument("names", nargs="+")
    sub.add_parser("rm", aliases=["remove"], help="remove images").add_argument("names", nargs="+")
    sub.add_parser("build-busybox", help="build busybox:latest from busybox-static")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        store = ImageStore(a.image_root)
        if a.command in ("ls", "list"):
            return cmd_ls(store, a.quiet)
        if a.command == "load":
            return cmd_load(store, a.file, a.name)
        if a.command == "inspect":
            return cmd_inspect(store, a.names)
        if a.command in ("rm", "remove"):
            return cmd_rm(store, a.names)
        if a.command == "pull":
            from .reference import normalize

            registry = normalize(a.name).registry
            auth = RegistryAuth(a.username, a.password) if a.username else None
            image = pull(
                store, a.name, auth=auth, insecure_registries=[registry] if a.insecure else []
            )
            print(f"Pulled: {a.name} ({image.id})")
            return 0
        image = build_busybox(store)
        print(f"Built: {image.repo_tags[0]} ({image.id})")
        return 0
    except (ArchiveError, PullError, LookupError, ValueError, OSError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"skiff image: {message}", file=sys.stderr)
        return 1
    except Exception as e:  # httpx errors and the like: still one line, never a traceback
        print(f"skiff image: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
