"""The pure parts of the store's hardening: what decodes, what a storage failure
answers, what the health endpoints print, and which process is an etcd on a data dir."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from apiserver import storage
from apiserver.app import LIVEZ_CHECKS, READYZ_CHECKS, health_response, storage_error
from apiserver.etcd_process import restart_delay, serves_data_dir
from apiserver.storage import (
    CorruptObjectError,
    StorageError,
    TooLargeError,
    UnavailableError,
    decode_checked,
)
from apiserver.watch import _stub_from_key


@pytest.fixture(autouse=True)
def kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        storage,
        "KINDS_BY_PREFIX",
        {
            "/registry/configmaps/": frozenset({"ConfigMap"}),
            "/registry/events/": frozenset({"Event"}),
        },
    )


KEY = "/registry/configmaps/default/x"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"not json {", "json parse error"),
        (b"\xff\xfe", "json parse error"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"text"', "a JSON str, not an object"),
        (b'{"kind": "ConfigMap", "metadata": "x"}', "metadata is not an object"),
        (b'{"kind": "ConfigMap", "metadata": {"name": 5}}', "metadata is not an object"),
        (b'{"kind": "Pod", "metadata": {"name": "x"}}', "kind 'Pod' is not ConfigMap"),
        (b'{"kind": null, "metadata": {"name": "x"}}', "kind None is not ConfigMap"),
    ],
)
def test_values_that_do_not_decode_name_their_key(value: bytes, why: str) -> None:
    with pytest.raises(CorruptObjectError) as caught:
        decode_checked(KEY, value, 7)
    message = str(caught.value)
    assert f"Key: {KEY}" in message and "ResourceVersion: 7" in message
    assert "failed to decode" in message and why in message


def test_a_good_value_decodes_with_its_revision() -> None:
    obj = decode_checked(KEY, b'{"kind":"ConfigMap","metadata":{"name":"x"},"data":{}}', 9)
    assert obj["metadata"] == {"name": "x", "resourceVersion": "9"}
    assert decode_checked(KEY, b'{"metadata":{"name":"x"}}', 9)["metadata"]["name"] == "x"
    # Keys outside any known prefix are not kind-checked.
    assert decode_checked("/registry/other/x", b'{"kind":"Y"}', 3)["kind"] == "Y"


@pytest.mark.parametrize(
    ("key", "meta"),
    [
        ("/registry/configmaps/default/x", {"name": "x", "namespace": "default"}),
        ("/registry/nodes/n1", {"name": "n1"}),
    ],
)
def test_a_deleted_corrupt_object_is_named_from_its_key(key: str, meta: dict[str, str]) -> None:
    assert _stub_from_key(key) == {"metadata": meta}


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (UnavailableError("etcd Range: UNAVAILABLE"), 503, "ServiceUnavailable"),
        (TooLargeError("etcdserver: request is too large"), 413, "RequestEntityTooLarge"),
        (CorruptObjectError(KEY, 3, "json parse error"), 500, "InternalError"),
        (StorageError("etcd Txn: INTERNAL"), 500, "InternalError"),
    ],
)
def test_storage_failures_leave_as_statuses(error: StorageError, code: int, reason: str) -> None:
    api = storage_error(error)
    assert (api.code, api.reason) == (code, reason)
    if code == 503:
        assert api.headers == {"Retry-After": "1"}
        assert api.status()["details"] == {"retryAfterSeconds": 1}
        assert "etcd is not reachable" in api.message
    if isinstance(error, CorruptObjectError):
        assert KEY in api.message


def body(response: Any) -> str:
    return bytes(response.body).decode()


def test_health_ok_is_one_word_and_verbose_lists_every_check() -> None:
    assert body(health_response("livez", LIVEZ_CHECKS, True, "")) == "ok"
    verbose = health_response("readyz", READYZ_CHECKS, True, "verbose")
    assert verbose.status_code == 200
    assert body(verbose).splitlines() == [
        "[+]ping ok",
        "[+]log ok",
        "[+]etcd ok",
        "[+]etcd-readiness ok",
        "readyz check passed",
    ]


def test_health_failure_is_500_with_the_failed_check_as_kube_apiserver_prints_it() -> None:
    failed = health_response("livez", LIVEZ_CHECKS, False, "")
    assert failed.status_code == 500
    assert body(failed).splitlines() == [
        "[+]ping ok",
        "[+]log ok",
        "[-]etcd failed: reason withheld",
        "livez check failed",
    ]
    excluded = health_response("livez", LIVEZ_CHECKS, False, "exclude=etcd&verbose")
    assert excluded.status_code == 200 and "[+]etcd excluded: ok" in body(excluded)


@pytest.mark.parametrize(
    ("check", "etcd_ok", "code"),
    [("ping", False, 200), ("etcd", True, 200), ("etcd", False, 500), ("nope", True, 404)],
)
def test_single_health_checks(check: str, etcd_ok: bool, code: int) -> None:
    assert health_response("livez", LIVEZ_CHECKS, etcd_ok, "", check).status_code == code


def test_only_a_process_naming_the_data_dir_is_an_etcd_on_it(tmp_path: Path) -> None:
    data = tmp_path / "etcd"
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--data-dir", str(data)]
    )
    try:
        # The command line shows in /proc once exec has finished.
        deadline = time.monotonic() + 10
        while not serves_data_dir(sleeper.pid, data) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert serves_data_dir(sleeper.pid, data)
        assert not serves_data_dir(sleeper.pid, tmp_path / "other")
        assert not serves_data_dir(sleeper.pid, tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not serves_data_dir(sleeper.pid, data)  # gone: never matches


def test_a_relative_data_dir_is_read_against_the_process_cwd(tmp_path: Path) -> None:
    """An older skiff passed --data-dir as the user gave it, maybe relative."""
    (tmp_path / "state").mkdir()
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--data-dir=state/etcd"],
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 10
        while not serves_data_dir(sleeper.pid, tmp_path / "state" / "etcd"):
            assert time.monotonic() < deadline, "the relative --data-dir never matched"
            time.sleep(0.01)
        assert not serves_data_dir(sleeper.pid, Path("/state/etcd"))
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize(
    ("previous", "stayed_up", "expected"),
    [
        (None, 0.0, 1.0),  # the first death
        (1.0, 2.0, 2.0),  # died again soon: double
        (8.0, 0.5, 16.0),
        (16.0, 1.0, 30.0),  # capped
        (30.0, 1.0, 30.0),
        (30.0, 31.0, 1.0),  # stayed up 30 s: start over
    ],
)
def test_etcd_restart_back_off(previous: float | None, stayed_up: float, expected: float) -> None:
    assert restart_delay(previous, stayed_up) == expected
