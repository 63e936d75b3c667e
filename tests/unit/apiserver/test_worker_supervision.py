"""The pure parts of the apiserver's worker supervision (apiserver/workers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.server import ServerConfig, config_from_json, config_to_json
from apiserver.workers import Step, decide, default_workers


@pytest.mark.parametrize(
    ("cpus", "want"), [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (16, 4), (0, 1)]
)
def test_default_workers_is_one_per_two_cpus_at_most_four(cpus: int, want: int) -> None:
    assert default_workers(cpus) == want


@pytest.mark.parametrize(
    ("case", "args", "want"),
    [
        ("running, alive", (None, True, 10.0, 0.0, None, None), Step()),
        ("just died after a long life", (1, True, 100.0, 0.0, 4.0, None),
         Step(died=True, restart_at=101.0, delay=1.0)),
        ("died again at once: back-off doubles", (1, True, 10.5, 10.0, 1.0, None),
         Step(died=True, restart_at=12.5, delay=2.0)),
        ("dead, waiting", (None, False, 11.0, 0.0, 1.0, 12.0), Step(restart_at=12.0, delay=1.0)),
        ("dead, time to start", (None, False, 12.0, 0.0, 1.0, 12.0), Step(spawn=True, delay=1.0)),
    ],
)  # fmt: skip
def test_decide(case: str, args: tuple, want: Step) -> None:
    assert decide(*args) == want, case


def test_a_worker_gets_the_parents_config_back() -> None:
    config = ServerConfig(
        state_dir=Path("/tmp/x"),
        etcd_servers=["https://127.0.0.1:1"],
        etcd_cafile=Path("/tmp/ca"),
        service_node_port_range=(30000, 30100),
        audit_log_path=None,
        workers=3,
    )
    assert config_from_json(config_to_json(config)) == config


def test_two_audit_writers_and_a_rotating_parent_lose_and_mix_no_line(tmp_path: Path) -> None:
    """Workers append (one write each line), the parent rotates: every line is
    somewhere, whole, however the renames fall between the writes."""
    import json
    import threading
    import time

    from apiserver.audit import RotatingWriter, rotate_if_full

    path = tmp_path / "audit.log"
    writers = [RotatingWriter(path, 0, 200, rotates=False) for _ in range(2)]
    per_writer, done = 400, threading.Event()

    def write(w: int) -> None:
        for i in range(per_writer):
            writers[w].write({"w": w, "i": i, "pad": "x" * (9000 if i % 20 == 0 else 100)})
            if i % 10 == 0:
                time.sleep(0.001)  # pacing: lets the rotator run between the writes

    def rotate() -> None:
        while not done.is_set():
            rotate_if_full(path, 30_000, 200)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    rotator = threading.Thread(target=rotate)
    rotator.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    rotator.join()
    # audit.log itself may be gone: the parent's last rotation can fall after both
    # writers' last lines (the next line written would create it again).
    files = list(tmp_path.glob("audit.log*"))
    assert len(files) >= 3  # it did rotate while they wrote
    seen = sorted(
        (e["w"], e["i"]) for f in files for e in map(json.loads, f.read_text().splitlines())
    )
    assert seen == sorted((w, i) for w in range(2) for i in range(per_writer))
