"""The dashboard's loop buttons: what each press writes into the loop-control ConfigMap."""

from __future__ import annotations

import pytest

from cli.dashboard import loop_patch, slim

CASES = [
    ("pause", None, {}, {"mode": "pause", "slow": "0s", "steps": "0", "granted": "0"}),
    ("step", None, {"mode": "pause", "steps": "2", "granted": "2", "slow": "0s"},
     {"mode": "pause", "steps": "3", "granted": "2", "slow": "0s"}),
    ("step", None, {}, {"mode": "pause", "steps": "1", "granted": "0", "slow": "0s"}),
    ("slow", 2.0, {"mode": "run"}, {"mode": "run", "steps": "0", "granted": "0", "slow": "2s"}),
    ("slow", 0.5, {}, {"mode": "run", "steps": "0", "granted": "0", "slow": "0.5s"}),
    ("slow", 0.0, {"slow": "2s"}, {"mode": "run", "steps": "0", "granted": "0", "slow": "0s"}),
    ("resume", None, {"mode": "pause", "steps": "4", "granted": "4", "slow": "2s",
                      "only": "scheduler"},
     {"mode": "run", "steps": "4", "granted": "4", "slow": "0s", "only": ""}),
    ("pause", None, {"only": "replicaset", "lastStep": "x"},
     {"mode": "pause", "slow": "0s", "steps": "0", "granted": "0", "only": "replicaset",
      "lastStep": "x"}),
]  # fmt: skip


@pytest.mark.parametrize(("action", "seconds", "current", "want"), CASES)
def test_loop_patch(action: str, seconds: float | None, current: dict, want: dict) -> None:
    assert loop_patch(action, seconds, current) == want


@pytest.mark.parametrize(("action", "seconds"), [("slow", None), ("slow", -1.0), ("go", None)])
def test_loop_patch_refuses(action: str, seconds: float | None) -> None:
    with pytest.raises(ValueError):
        loop_patch(action, seconds, {})


def test_slim_drops_managed_fields_only() -> None:
    obj = {"kind": "Pod", "metadata": {"name": "p", "managedFields": [{}]}, "spec": {}}
    assert slim(obj) == {"kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
