"""FallbackToLogsOnError: the end of a CRI-format log, without its prefixes."""

from __future__ import annotations

from pathlib import Path

from kubelet.pods import _log_tail


def test_log_tail_joins_partial_lines_and_keeps_the_last_80(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    lines = [f"2026-12-02T03:00:00.{n:09d}Z stdout F line {n}" for n in range(100)]
    lines += [
        "2026-12-02T03:00:01.000000000Z stderr P half ",
        "2026-12-02T03:00:01.000000001Z stderr F and half",
    ]
    log.write_text("\n".join(lines) + "\n")
    tail = _log_tail(log)
    assert tail.endswith("line 99\nhalf and half\n")
    assert "line 21\n" not in tail and "line 22\n" in tail  # 80 log lines, the last one joined
    assert _log_tail(tmp_path / "missing.log") == ""
