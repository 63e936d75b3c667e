"""Memory of an idle shim, beside a bare idle Python interpreter measured in the same run.

    .venv/bin/python bench/shim_memory.py

Starts one busybox container (`sleep 60`) under a shim, waits until it is
running, and reads the shim's RSS and private memory from /proc; then does the
same for idle interpreters (with and without site imports), the floor any
Python shim pays.
Everything started is stopped and removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.cgroups import remove_tree  # noqa: E402
from runtime.daemon import shim  # noqa: E402
from runtime.images.busybox import build_busybox  # noqa: E402
from runtime.images.rootfs import mount_rootfs, unmount_rootfs  # noqa: E402
from runtime.images.store import ImageStore  # noqa: E402


def memory(pid: int) -> tuple[int, int]:
    """(RSS, private) in KiB: RSS counts the interpreter's shared pages too; private
    (Private_Clean + Private_Dirty) is what one more container really adds."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        base = Path(tmp)
        image = build_busybox(ImageStore(base / "images"))
        cid, parent = f"c{uuid.uuid4().hex[:8]}", f"skiff-bench-{uuid.uuid4().hex[:8]}"
        cdir = base / cid
        bundle = cdir / "bundle"
        bundle.mkdir(parents=True)
        state = base / "state"
        try:
            rootfs = mount_rootfs(image, bundle)
            subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
            config = json.loads((bundle / "config.json").read_text())
            config["root"] = {"path": str(rootfs), "readonly": False}
            config["process"].update(terminal=False, args=["sleep", "60"], env=image.config["Env"])
            config["linux"]["cgroupsPath"] = f"/{parent}/{cid}"
            (bundle / "config.json").write_text(json.dumps(config))
            (cdir / "container.json").write_text(
                json.dumps(
                    {"id": cid, "log_path": str(cdir / "0.log"), "cgroup": f"/{parent}/{cid}"}
                )
            )
            runtime = [sys.executable, "-m", "runtime.runc.main", "--root", str(state)]
            subprocess.Popen(
                shim.command(str(cdir), cid, str(cdir / "0.log"), f"/{parent}/{cid}", runtime),
                cwd=ROOT,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while not (cdir / "shim.pid").exists():
                time.sleep(0.05)
            subprocess.run([*runtime, "start", cid], check=True, cwd=ROOT)
            time.sleep(1)
            rows = [("idle shim (per container)", memory(int((cdir / "shim.pid").read_text())))]
            for label, flags in (
                ('bare idle `python -c "time.sleep(60)"`', []),
                ('bare idle `python -I -S -c "time.sleep(60)"`', ["-I", "-S"]),
            ):
                bare = subprocess.Popen(
                    [sys.executable, *flags, "-c", "import time; time.sleep(60)"]
                )
                time.sleep(1)
                rows.append((label, memory(bare.pid)))
                bare.kill()
                bare.wait()
            print(f"{'process':<46} {'RSS':>9} {'private':>9}")
            for label, (rss, private) in rows:
                print(f"{label:<46} {rss / 1024:5.1f} MiB {private / 1024:5.1f} MiB")
        finally:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "runtime.runc.main",
                    "--root",
                    str(state),
                    "delete",
                    "--force",
                    cid,
                ],
                cwd=ROOT,
                capture_output=True,
            )
            pid_file = cdir / "shim.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            unmount_rootfs(bundle)
            remove_tree(parent)


if __name__ == "__main__":
    main()
