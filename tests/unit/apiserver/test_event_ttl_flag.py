"""--event-ttl takes kube-apiserver's spelling of a duration, and the lease manager
shares leases the way kube-apiserver's does."""

from __future__ import annotations

import pytest

from apiserver.__main__ import parse_args
from apiserver.storage import LeaseManager


@pytest.mark.parametrize(
    ("flag", "seconds"), [("1h0m0s", 3600.0), ("30m", 1800.0), ("90s", 90.0), ("45", 45.0)]
)
def test_event_ttl_is_a_go_duration_or_seconds(flag: str, seconds: float) -> None:
    assert parse_args(["--event-ttl", flag]).event_ttl == seconds


def test_event_ttl_defaults_to_an_hour_and_refuses_nonsense(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).event_ttl == 3600.0
    with pytest.raises(SystemExit):
        parse_args(["--event-ttl", "an hour"])
    assert "invalid duration" in capsys.readouterr().err


def test_a_lease_is_reused_for_5_percent_of_the_ttl_at_most_a_minute() -> None:
    assert LeaseManager.reuse_seconds(3600) == 60
    assert LeaseManager.reuse_seconds(600) == 30
    assert LeaseManager.reuse_seconds(10) == 0  # too short to share: one lease per write
