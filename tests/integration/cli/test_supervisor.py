"""The supervisor on its own, with stand-in components (`python -m timeit` sleeping,
`python -m this` exiting at once): restart with back-off, status file, stop."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from cli.layout import Layout
from cli.supervisor import Component, Supervisor

from .conftest import wait_for


def sleeper(name: str) -> Component:
    args = ["-n", "1", "-r", "1", "import time; time.sleep(60)"]
    return Component(name, "timeit", lambda _: args, lambda _: "")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_killed_component_comes_back_and_stop_ends_all(tmp_path: Path) -> None:
    sup = Supervisor(Layout(state_dir=tmp_path), [sleeper("one"), sleeper("two")])
    try:
        sup.start_all(timeout=30)
        status = json.loads((tmp_path / "components.json").read_text())
        assert status["supervisor"]["ready"] is True
        first = status["components"]["one"]["pid"]
        assert alive(first) and status["components"]["one"]["state"] == "running"
        os.kill(first, signal.SIGKILL)
        sup.run_until(lambda: sup.children["one"].restarts == 1, 30, "a restart")
        again = json.loads((tmp_path / "components.json").read_text())["components"]["one"]
        assert again["pid"] != first and alive(again["pid"]) and again["last_exit"] == -9
    finally:
        pids = [c.proc.pid for c in sup.children.values() if c.proc]
        sup.stop_all(remove_pods=False)
    assert not [p for p in pids if alive(p)]
    states = json.loads((tmp_path / "components.json").read_text())["components"]
    assert {s["state"] for s in states.values()} == {"stopped"}
    assert (tmp_path / "logs" / "one.log").read_text().count("--- skiff: starting") == 2


def test_a_component_that_keeps_dying_backs_off(tmp_path: Path) -> None:
    sup = Supervisor(Layout(state_dir=tmp_path), [Component("quitter", "this", lambda _: [],
                                                            lambda _: "")])  # fmt: skip
    try:
        sup.start(sup.components[0])
        child = sup.children["quitter"]
        # 1 s before the first restart, 2 s before the second (doubling to 30 s)
        sup.run_until(lambda: child.restarts == 2, 30, "two restarts")
        assert child.delay == 2.0
        wait_for(lambda: child.proc is not None and child.proc.poll() is not None, "the exit")
    finally:
        sup.stop_all(remove_pods=False)


def test_each_component_starts_once_its_needs_are_ready_not_behind_others(
    tmp_path: Path,
) -> None:
    """`slow` is not ready until a file appears; what needs it waits, what comes after it in
    the table but needs only `fast` starts at once."""
    flag = tmp_path / "slow-ready"

    def ready_once_flagged(_: Layout) -> str:
        return "" if flag.exists() else "not yet"

    slow = Component("slow", "timeit", sleeper("slow").args, ready_once_flagged)
    waits = Component("waits", "timeit", sleeper("waits").args, lambda _: "", needs=("slow",))
    fast = sleeper("fast")
    free = Component("free", "timeit", sleeper("free").args, lambda _: "", needs=("fast",))
    sup = Supervisor(Layout(state_dir=tmp_path), [slow, fast, waits, free])
    try:
        wait_for(lambda: sup.start_due() or "free" in sup.children, "free to start", 30)
        assert "waits" not in sup.children
        assert not sup.all_ready
        flag.write_text("")
        sup.start_all(timeout=30)
        assert set(sup.children) == {"slow", "fast", "waits", "free"} and sup.all_ready
    finally:
        sup.stop_all(remove_pods=False)
