"""`python -m runtime.daemon`: the runtime daemon on a unix socket."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from pathlib import Path

from proto import DEFAULT_SOCKET
from runtime.runc import command as runc_command

from .server import Settings, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="skiff runtime", description=__doc__)
    p.add_argument("--socket", type=Path, default=Path(DEFAULT_SOCKET))
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/skiff/runtime"))
    p.add_argument("--run-dir", type=Path, default=Path("/run/skiff"))
    p.add_argument("--image-root", type=Path, default=Path("/var/lib/skiff/images"))
    p.add_argument("--oci-runtime", default="skiff-runc", choices=["skiff-runc", "runc", "crun"])
    p.add_argument(
        "--cgroup-root",
        default="/skiff",
        help="the cgroup under which pods get theirs, unless the kubelet names one",
    )
    p.add_argument("--pod-cidr", default="", help="this node's pod addresses, e.g. 10.244.1.0/24")
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        help="host:port of a registry to reach over plain HTTP (repeatable)",
    )
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if a.oci_runtime == "skiff-runc":
        oci = runc_command()
    elif shutil.which(a.oci_runtime):
        oci = [a.oci_runtime]
    else:
        print(f"skiff runtime: {a.oci_runtime} is not installed", file=sys.stderr)
        return 1
    oci += ["--root", str(a.run_dir / "oci")]
    settings = Settings(
        state_dir=a.state_dir,
        run_dir=a.run_dir,
        image_root=a.image_root,
        oci_runtime=oci,
        pod_cidr=a.pod_cidr,
        cgroup_root=a.cgroup_root,
        insecure_registries=tuple(a.insecure_registry),
    )
    asyncio.run(serve(settings, a.socket))
    return 0


if __name__ == "__main__":
    sys.exit(main())
