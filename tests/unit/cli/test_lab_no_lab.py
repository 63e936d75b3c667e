"""`skiff lab kubectl` with no lab says so in one line, as the other lab commands do."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import lab


def test_kubectl_without_a_lab_is_one_readable_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = lab.main(["--state-dir", str(tmp_path / "none"), "kubectl", "get", "pods"])
    assert rc == 1
    err = capsys.readouterr().err
    none = tmp_path / "none"
    assert err.strip() == f"skiff lab: no lab in {none} (start one with `skiff lab up`)"
