"""The pure parts of the apiserver's worker supervision (apiserver/workers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.server import ServerConfig, config_from_json, config_to_json
from apiserver.workers import Step, decide, default_workers


@pytest.mark.parametrize(("cpus", "want"), [(1, 1), (2, 2), (4, 4), (16, 4), (0, 1)])
def test_default_workers_is_one_per_cpu_at_most_four(cpus: int, want: int) -> None:
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
