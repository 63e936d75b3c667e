"""`skiff etcd snapshot save FILE | restore FILE`, and what `skiff status` says about etcd.

The embedded etcd is the apiserver's child (apiserver/etcd_process.py); its
client port is in `<state-dir>/etcd-ports.json` and, where the apiserver
serves etcd over TLS, the client certificate kubeadm calls
`apiserver-etcd-client` is under `pki/`. These commands run the real
`etcdctl` with those, so what they do is what an etcd operator would type:

    etcdctl --endpoints https://127.0.0.1:PORT --cacert pki/etcd/ca.crt \\
            --cert pki/apiserver-etcd-client.crt --key ... snapshot save FILE

A restore needs the cluster down: it replaces the data directory with one
rebuilt from the snapshot (the old one is kept beside it), as `etcdutl
snapshot restore` does, and the next `skiff up` serves the restored cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .layout import DEFAULT_STATE_DIR, Layout


class EtcdCommandError(Exception):
    pass


def ports(layout: Layout) -> tuple[int, int]:
    data = json.loads((layout.state_dir / "etcd-ports.json").read_text())
    return int(data["client"]), int(data["peer"])


def tls_flags(layout: Layout) -> list[str]:
    ca = layout.pki / "etcd" / "ca.crt"
    cert, key = layout.pki / "apiserver-etcd-client.crt", layout.pki / "apiserver-etcd-client.key"
    if ca.exists() and cert.exists() and key.exists():
        return ["--cacert", str(ca), "--cert", str(cert), "--key", str(key)]
    return []


def scheme(layout: Layout) -> str:
    return "https" if tls_flags(layout) else "http"


def endpoint(layout: Layout) -> str:
    return f"{scheme(layout)}://127.0.0.1:{ports(layout)[0]}"


def etcdctl(layout: Layout, *args: str, timeout: float = 30.0) -> str:
    """Run etcdctl against the embedded etcd; its output, or EtcdCommandError."""
    if layout.etcd_servers:
        raise EtcdCommandError(
            "this cluster uses an external etcd (--etcd-servers): run etcdctl against it"
        )
    if not shutil.which("etcdctl"):
        raise EtcdCommandError("etcdctl is not installed (apt-get install etcd-client)")
    try:
        argv = ["etcdctl", "--endpoints", endpoint(layout), *tls_flags(layout), *args]
    except OSError as e:
        raise EtcdCommandError(f"no embedded etcd here ({e.filename} is missing)") from e
    env = {**os.environ, "ETCDCTL_API": "3"}
    try:
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                           check=False)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise EtcdCommandError(f"etcdctl {' '.join(args)}: no answer in {timeout:.0f}s") from e
    if r.returncode != 0:
        raise EtcdCommandError(f"etcdctl {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def alarms(layout: Layout) -> list[str]:
    """The etcd alarms raised now, e.g. ["NOSPACE"] once the database hit its quota."""
    out = etcdctl(layout, "alarm", "list", timeout=5)
    return sorted(
        {line.split("alarm:")[-1].strip() for line in out.splitlines() if "alarm:" in line}
    )


def pid(layout: Layout) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        found = int((layout.state_dir / "etcd.pid").read_text().strip())
        os.kill(found, 0)
        return found
    return None


def save(layout: Layout, file: Path) -> str:
    etcdctl(layout, "snapshot", "save", str(file), timeout=300)
    return f"saved a snapshot of the cluster's etcd to {file} ({file.stat().st_size} bytes)"


def restore(layout: Layout, file: Path) -> str:
    if not file.is_file():
        raise EtcdCommandError(f"{file}: no such snapshot file")
    if layout.etcd_servers:
        raise EtcdCommandError("this cluster uses an external etcd (--etcd-servers)")
    _, peer = ports(layout)
    data = layout.state_dir / "etcd"
    fresh = layout.state_dir / "etcd.restoring"
    shutil.rmtree(fresh, ignore_errors=True)
    peer_url = f"{scheme(layout)}://127.0.0.1:{peer}"
    env = {**os.environ, "ETCDCTL_API": "3"}
    tool = ["etcdutl"] if shutil.which("etcdutl") else ["etcdctl"]
    r = subprocess.run(
        [*tool, "snapshot", "restore", str(file), "--data-dir", str(fresh), "--name", "skiff",
         "--initial-cluster", f"skiff={peer_url}", "--initial-advertise-peer-urls", peer_url],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if r.returncode != 0:
        shutil.rmtree(fresh, ignore_errors=True)
        raise EtcdCommandError(f"restore failed: {r.stderr.strip()[-500:]}")
    kept = layout.state_dir / f"etcd.before-restore-{time.strftime('%Y%m%d-%H%M%S')}"
    if data.exists():
        data.rename(kept)
    fresh.rename(data)
    data.chmod(0o700)
    return (
        f"restored {file} into {data} (the data before is in {kept}); "
        "skiff up starts the restored cluster"
    )


def main(argv: list[str]) -> int:
    import argparse

    from .status import supervisor_pid

    p = argparse.ArgumentParser(prog="skiff etcd", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    snap = sub.add_parser("snapshot", help="back up or restore the cluster's etcd")
    snap.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    snap.add_argument("action", choices=["save", "restore"])
    snap.add_argument("file", type=Path)
    a = p.parse_args(argv)
    layout = Layout.load(a.state_dir.resolve())
    if layout is None:
        print(f"skiff etcd: no cluster in {a.state_dir} (skiff up never ran there)",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        if a.action == "save":
            print(save(layout, a.file.resolve()))
        else:
            if supervisor_pid(layout) or pid(layout):
                print("skiff etcd: skiff is up; run skiff down first, then restore",
                      file=sys.stderr)  # fmt: skip
                return 1
            print(restore(layout, a.file.resolve()))
    except (EtcdCommandError, OSError) as e:
        print(f"skiff etcd: {e}", file=sys.stderr)
        return 1
    return 0
