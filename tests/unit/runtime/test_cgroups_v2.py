"""The v2 driver over a fake unified tree: the files it writes and reads."""

from __future__ import annotations

from pathlib import Path

from runtime.cgroups import CgroupV2, Resources, detect


def fake_tree(root: Path) -> Path:
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_detect(tmp_path: Path) -> None:
    assert detect(tmp_path) == "v1"
    assert detect(fake_tree(tmp_path)) == "v2"


def test_create_apply_and_read(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    cg = CgroupV2("/skiff/pod1/c1", root)
    cg.create()
    cg_dir = Path(cg.dir)
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    (cg_dir / "memory.swap.max").write_text("max")
    cg.apply(Resources(cpu_shares=512, cpu_quota=50_000, memory_limit=128 * 2**20, pids_limit=100))
    assert (cg_dir / "cpu.max").read_text() == "50000 100000"
    assert (cg_dir / "cpu.weight").read_text() == str(Resources.weight_from_shares(512))
    assert (cg_dir / "memory.max").read_text() == str(128 * 2**20)
    assert (cg_dir / "memory.swap.max").read_text() == "0"
    assert (cg_dir / "pids.max").read_text() == "100"
    (cg_dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (cg_dir / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\n")
    assert cg.oom_killed() == 1
    assert cg.cpu_usage_ns() == 2_500_000


def test_shares_to_weight_matches_runc() -> None:
    assert Resources.weight_from_shares(2) == 1
    assert Resources.weight_from_shares(1024) == 39
    assert Resources.weight_from_shares(262144) == 10000
