"""The dashboard's loop buttons: what each press writes into the loop-control ConfigMap."""

from __future__ import annotations

import pytest

from cli.dashboard import loop_patch, slim

CASES = [
    ("pause", None, {}, {"mode": "paused", "step": "0", "slow": "0s"}),
    ("step", None, {"mode": "paused", "step": "2", "slow": "0s"},
     {"mode": "paused", "step": "3", "slow": "0s"}),
    ("step", None, {}, {"mode": "paused", "step": "1", "slow": "0s"}),
    ("slow", 2.0, {"mode": "running"}, {"mode": "running", "step": "0", "slow": "2s"}),
    ("slow", 0.5, {}, {"mode": "running", "step": "0", "slow": "0.5s"}),
    ("resume", None, {"mode": "paused", "step": "4", "slow": "2s"},
     {"mode": "running", "step": "4", "slow": "0s"}),
    ("pause", None, {"only": "replicaset"},
     {"mode": "paused", "step": "0", "slow": "0s", "only": "replicaset"}),
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
