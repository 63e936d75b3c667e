"""How long `skiff up` takes to a Ready node with DNS answering, beside etcd alone (the floor).

    .venv/bin/python bench/cluster_up.py [--runs 3]

Each run happens in a private network namespace with no route out (the bench
process enters it with setns, so everything it starts lives there) and a
fresh temporary state directory:

- etcd alone: the same etcd binary the apiserver embeds, on fresh data, until
  `etcdctl endpoint health` says healthy: no Kubernetes can be ready sooner;
- `skiff up` cold: a fresh state directory (CA and certificates made, busybox
  image built, etcd initialised) until `up` returns: the node Ready and
  cluster DNS answering;
- `skiff up` warm: `skiff down`, then `up` again on the same state;
- then `skiff reset`, which leaves the namespace empty again.

Where the time goes comes from the supervisor's log ("<component> is ready").
Anchors: k3s reports a node Ready in about 30 s on small machines; skiff's
target is 10 s. The three-node lab's half is bench/lab_up.py.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def etcd_alone(base: Path) -> float:
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["etcd", "--name", "bench", "--data-dir", str(base / "etcd-alone"),
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"bench=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while True:
            r = subprocess.run(["etcdctl", "--endpoints", url, "endpoint", "health"],
                               capture_output=True, env={**os.environ, "ETCDCTL_API": "3"},
                               check=False)  # fmt: skip
            if r.returncode == 0:
                return time.perf_counter() - t0
            if proc.poll() is not None:
                raise RuntimeError("etcd exited")
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait()


def skiff(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                       cwd=ROOT, check=False)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"skiff {args[0]} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def ready_times(log: Path, since: float) -> dict[str, float]:
    """Seconds from `since` to each "<component> is ready" line of the supervisor's log."""
    found = {}
    for line in log.read_text().splitlines():
        m = re.match(r"(\S+ \S+) skiff.supervisor INFO (\S+) is ready", line)
        if m:
            when = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if when >= since:
                found[m.group(2)] = when - since
    return found


def one_run(base: Path, uid: str) -> dict[str, float | dict[str, float]]:
    state = base / "state"
    flags = ["--state-dir", str(state)]
    up = [*flags, "--node-name", "bench-node", "--node-ip", "127.0.0.1",
          "--run-dir", str(base / "run"), "--cgroup-root", f"/skiff-bench-{uid}",
          "--pod-log-dir", str(base / "pods")]  # fmt: skip
    floor = etcd_alone(base)
    try:
        since = time.time()
        t0 = time.perf_counter()
        skiff("up", *up)
        cold = time.perf_counter() - t0
        steps = ready_times(state / "logs" / "supervisor.log", since)
        skiff("down", *flags)
        t0 = time.perf_counter()
        skiff("up", *flags)
        warm = time.perf_counter() - t0
    finally:
        skiff("reset", *flags)
    return {"etcd": floor, "cold": cold, "warm": warm, "steps": steps}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    if os.geteuid() != 0 or not shutil.which("etcd"):
        print("needs root and etcd", file=sys.stderr)
        return 1
    results = []
    for _ in range(a.runs):
        uid = uuid.uuid4().hex[:8]
        netns = f"skiffbench-up-{uid}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        base = Path(tempfile.mkdtemp(prefix="skiff-bench-up-"))
        try:
            setns(target)
            results.append(one_run(base, uid))
        finally:
            setns(home)
            os.close(home)
            os.close(target)
            subprocess.run(["ip", "netns", "del", netns], check=False)
            shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(float(r[k]) for r in results)  # type: ignore[arg-type]
           for k in ("etcd", "cold", "warm")}  # fmt: skip
    print(
        f"runs: {a.runs} (medians; each run in a fresh network namespace and state dir); "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(f"  etcd alone, to healthy          {med['etcd']:6.2f} s   (the floor)")
    cold = ", ".join(f"{float(r['cold']):.1f}" for r in results)  # type: ignore[arg-type]
    warm = ", ".join(f"{float(r['warm']):.1f}" for r in results)  # type: ignore[arg-type]
    print(
        f"  skiff up (fresh) to node Ready  {med['cold']:6.2f} s   (target <= 10 s; k3s ~30 s)"
        f"  runs: {cold}"
    )
    print(f"  skiff up after down, to Ready   {med['warm']:6.2f} s  runs: {warm}")
    steps = results[len(results) // 2]["steps"]
    assert isinstance(steps, dict)
    print("  where a fresh up spends it (ready after the start of `up`):")
    for name, seconds in steps.items():
        print(f"    {name:<20} {seconds:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
