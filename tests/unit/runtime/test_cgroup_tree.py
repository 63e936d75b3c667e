"""remove_tree over fake hierarchies: deepest first, every hierarchy, busy ones kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cgroups import remove_tree


def test_removes_the_tree_in_every_hierarchy_and_keeps_busy_ones(tmp_path: Path) -> None:
    for hierarchy in ("cpu", "memory", "unified"):
        (tmp_path / hierarchy / "skiff-test" / "pod1" / "c1").mkdir(parents=True)
    (tmp_path / "memory" / "skiff-test" / "pod2").mkdir()
    (tmp_path / "memory" / "skiff-test" / "pod2" / "busy").write_text("a process is here")
    (tmp_path / "cpu" / "other").mkdir()
    remove_tree("/skiff-test", tmp_path)
    assert not (tmp_path / "cpu" / "skiff-test").exists()
    assert not (tmp_path / "unified" / "skiff-test").exists()
    assert sorted(p.name for p in (tmp_path / "memory" / "skiff-test").iterdir()) == ["pod2"]
    assert (tmp_path / "cpu" / "other").is_dir()  # only what was named
    with pytest.raises(ValueError):
        remove_tree("/", tmp_path)
