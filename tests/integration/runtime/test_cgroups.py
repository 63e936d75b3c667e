"""Real cgroups on this machine: limits hold, OOM kills are seen, usage is measured,
and every cgroup a test makes is removed again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from runtime.cgroups import Resources, open_cgroup, remove_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")


@pytest.fixture
def cgroup() -> Iterator[object]:
    """A cgroup of its own below a unique parent; both removed afterwards, also on
    failure, once every process the test left in it is killed and gone."""
    parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    cg = open_cgroup(f"/{parent}/ctr")
    try:
        cg.create()
        yield cg
    finally:
        deadline = time.monotonic() + 10
        while (pids := cg.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)  # SIGKILL is asynchronous: look again until none is left
        try:
            cg.delete()
            open_cgroup(f"/{parent}").delete()
        finally:
            remove_tree(parent)  # whatever is left, in every hierarchy


def run_in(cg: object, code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-c", code],
        preexec_fn=lambda: cg.add(os.getpid()),  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_memory_hog_is_oom_killed_and_seen(cgroup: object) -> None:
    cgroup.apply(Resources(memory_limit=32 * 1024 * 1024))  # type: ignore[attr-defined]
    result = run_in(cgroup, "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])")
    assert result.returncode == -9  # SIGKILL from the kernel's OOM killer
    assert cgroup.oom_killed() >= 1  # type: ignore[attr-defined]


def test_small_allocation_fits_and_no_oom(cgroup: object) -> None:
    cgroup.apply(Resources(memory_limit=64 * 1024 * 1024))  # type: ignore[attr-defined]
    result = run_in(cgroup, "b = bytearray(8 * 1024 * 1024); print('ok')")
    assert result.stdout.strip() == "ok"
    assert cgroup.oom_killed() == 0  # type: ignore[attr-defined]


def test_pids_limit_stops_a_fork_bomb(cgroup: object) -> None:
    cgroup.apply(Resources(pids_limit=8))  # type: ignore[attr-defined]
    code = (
        "import os, time\n"
        "made = 0\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(3); os._exit(0)\n"
        "    made += 1\n"
        "print(made)\n"
    )
    result = run_in(cgroup, code)
    assert 0 < int(result.stdout.strip()) < 8


def test_cpu_quota_limits_usage(cgroup: object) -> None:
    cgroup.apply(Resources(cpu_quota=20_000, cpu_period=100_000))  # type: ignore[attr-defined]
    start = time.monotonic()
    run_in(cgroup, "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\n")
    wall = time.monotonic() - start
    used = cgroup.cpu_usage_ns() / 1e9  # type: ignore[attr-defined]
    # A busy loop for 1.5 s may use at most ~0.2 of a CPU: generous bounds, behaviour not speed.
    assert used / wall < 0.35
    assert used > 0.05
