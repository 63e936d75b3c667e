"""Memory of an idle shim, beside a bare idle Python interpreter measured in the same run.

    .venv/bin/python bench/shim_memory.py

Starts one busybox container (`sleep 60`) under a shim, waits until it is
running, and reads VmRSS of the shim process from /proc; then does the same
for `python -c "import time; time.sleep(60)"`, the floor any Python shim pays.
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

from runtime.images.busybox import build_busybox  # noqa: E402
from runtime.images.rootfs import mount_rootfs, unmount_rootfs  # noqa: E402
from runtime.images.store import ImageStore  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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
                [sys.executable, "-m", "runtime.daemon.shim", str(cdir), *runtime],
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
            shim = rss_kib(int((cdir / "shim.pid").read_text()))
            bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            time.sleep(1)
            floor = rss_kib(bare.pid)
            bare.kill()
            bare.wait()
            print(
                f"idle shim RSS {shim / 1024:6.1f} MiB   "
                f"bare idle python RSS {floor / 1024:6.1f} MiB"
            )
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
            for controller in os.listdir("/sys/fs/cgroup"):
                for d in (
                    f"/sys/fs/cgroup/{controller}/{parent}/{cid}",
                    f"/sys/fs/cgroup/{controller}/{parent}",
                ):
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass


if __name__ == "__main__":
    main()
