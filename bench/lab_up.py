"""How long a cluster takes to come up, beside the floor: etcd alone.

    .venv/bin/python bench/lab_up.py [--runs 3] [--nodes 3]

- etcd alone: start the embedded etcd (the same binary and flags the
  apiserver uses) until it answers /health: nothing skiff does can be faster.
- `skiff lab up --nodes 3`: from nothing to every node Ready (network
  namespaces, the busybox image, apiserver with etcd, controller-manager,
  scheduler, and a runtime, kubelet, route agent and proxy per node), as the
  command itself reports it, then `skiff lab down` (timed too).

Anchors (issue 13): kind reports a 3-node cluster in about a minute, k3s one
node Ready in about 30 s on small machines; the target is a 3-node lab in
20 s or less. The lab runs only inside namespaces it creates: no traffic
leaves them.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apiserver.etcd_process import EtcdProcess  # noqa: E402


def etcd_alone() -> float:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-etcd-") as tmp:
        etcd = EtcdProcess(Path(tmp) / "etcd", log_path=Path(tmp) / "etcd.log")
        t0 = time.monotonic()
        etcd.start()
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{etcd.url}/health", timeout=1) as r:
                        if b'"true"' in r.read():
                            return time.monotonic() - t0
                except OSError:
                    time.sleep(0.02)
        finally:
            etcd.stop()


def lab_up(nodes: int) -> tuple[float, float, float]:
    """(seconds to all Ready as measured here, as `lab up` reports it, `lab down`)."""
    with tempfile.TemporaryDirectory(prefix="skiff-bench-lab-") as tmp:
        state = Path(tmp) / "lab"
        cmd = [sys.executable, "-m", "cli.main", "lab", "--state-dir", str(state)]
        t0 = time.monotonic()
        try:
            up = subprocess.run(
                [*cmd, "up", "--nodes", str(nodes)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=600,
            )
            took = time.monotonic() - t0
            if up.returncode:
                raise SystemExit(f"lab up failed:\n{up.stdout}\n{up.stderr}")
            m = re.search(r"Ready in ([\d.]+) s", up.stdout)
            reported = float(m.group(1)) if m else float("nan")
        finally:
            t1 = time.monotonic()
            subprocess.run([*cmd, "down"], capture_output=True, cwd=ROOT, timeout=600)
            down = time.monotonic() - t1
        return took, reported, down


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--nodes", type=int, default=3)
    a = p.parse_args()
    floor = [etcd_alone() for _ in range(a.runs)]
    labs = [lab_up(a.nodes) for _ in range(a.runs)]
    med = statistics.median
    print(f"etcd alone to healthy:            median {med(floor):6.2f} s  (the floor)")
    print(
        f"skiff lab up --nodes {a.nodes} to Ready:  median {med(x[0] for x in labs):6.2f} s  "
        f"(runs: {', '.join(f'{x[0]:.1f}' for x in labs)}; target <= 20 s, kind ~60 s)"
    )
    print(f"skiff lab down:                   median {med(x[2] for x in labs):6.2f} s")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
