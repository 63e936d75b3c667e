"""Container start latency: skiff-runc beside runc and crun, on one busybox bundle.

    .venv/bin/python bench/container_start.py [--runs 100]

Each run is `<runtime> run` of `/bin/true` (create, start, wait, delete), timed
from the command's start to its exit, the runtimes taking turns so that they
see the same machine. crun is left out where it refuses the cgroup layout
(crun 1.8 on a hybrid v1/v2 machine) and the reason is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    (bundle / "rootfs" / "bin" / "true").symlink_to("busybox")
    for d in ("proc", "dev", "sys", "tmp"):
        (bundle / "rootfs" / d).mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["linux"]["cgroupsPath"] = f"/skiff-bench-{uuid.uuid4().hex[:8]}/ctr"
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def cleanup_cgroups(bundle: Path) -> None:
    parent = json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"].split("/")[1]
    for controller in os.listdir("/sys/fs/cgroup"):
        for d in (
            f"/sys/fs/cgroup/{controller}/{parent}/ctr",
            f"/sys/fs/cgroup/{controller}/{parent}",
        ):
            try:
                os.rmdir(d)
            except OSError:
                pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        base = Path(tmp)
        bundle = make_bundle(base)
        runtimes = {
            "skiff-runc": [sys.executable, "-m", "runtime.runc.main", "--root", str(base / "s")],
            "runc": ["runc", "--root", str(base / "r")],
        }
        if shutil.which("crun"):
            runtimes["crun"] = ["crun", "--root", str(base / "c")]
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        skipped: dict[str, str] = {}
        try:
            for i in range(args.runs):
                for name, cmd in runtimes.items():
                    if name in skipped:
                        continue
                    t0 = time.perf_counter()
                    r = subprocess.run(
                        [*cmd, "run", "--bundle", str(bundle), f"b{i}"],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        stdin=subprocess.DEVNULL,
                    )
                    if r.returncode != 0:
                        skipped[name] = (r.stderr.strip().splitlines() or ["failed"])[-1]
                        continue
                    times[name].append(time.perf_counter() - t0)
        finally:
            cleanup_cgroups(bundle)
        print(f"machine: {os.cpu_count()} cpus; {args.runs} runs of /bin/true each\n")
        for name, values in times.items():
            if name in skipped or not values:
                print(f"  {name:<11} skipped: {skipped.get(name, 'no runs')}")
                continue
            ordered = sorted(values)
            p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
            print(
                f"  {name:<11} p50 {statistics.median(values) * 1000:7.1f} ms   "
                f"p99 {p99 * 1000:7.1f} ms"
            )


if __name__ == "__main__":
    main()
