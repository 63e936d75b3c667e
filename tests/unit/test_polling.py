"""tests/polling.py's eventually(): what it returns, what "not yet" is, how it fails."""

from __future__ import annotations

import pytest

from tests.polling import eventually


def test_returns_the_first_true_value() -> None:
    values = iter([None, 0, {"ready": True}])
    assert eventually(lambda: next(values), 5, interval=0) == {"ready": True}


def test_ignored_exceptions_are_not_yet_and_shown_last() -> None:
    attempts = iter([KeyError("spec"), ConnectionError("refused"), "up"])

    def check() -> str:
        value = next(attempts)
        if isinstance(value, Exception):
            raise value
        return value

    assert eventually(check, 5, interval=0, ignoring=(KeyError, ConnectionError)) == "up"
    with pytest.raises(AssertionError, match=r"the server: last=ConnectionRefusedError\('no'\)"):
        eventually(lambda: _refuse(), 0.05, "the server", interval=0, ignoring=(OSError,))
    with pytest.raises(KeyError):  # not ignored: the test fails at once, as it says
        eventually(lambda: {}["x"], 5, interval=0, ignoring=(OSError,))


def test_a_description_made_at_the_failure() -> None:
    made = []

    def describe() -> str:
        made.append(1)
        return "the pod Running; operator log: boom"

    with pytest.raises(AssertionError, match="operator log: boom: last=False"):
        eventually(lambda: False, 0.05, describe, interval=0)
    assert made == [1]  # only then


def _refuse() -> None:
    raise ConnectionRefusedError("no")
