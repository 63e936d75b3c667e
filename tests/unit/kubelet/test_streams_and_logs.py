"""The channel protocol's status messages, and CRI log lines back to a container's text."""

from __future__ import annotations

import datetime

import pytest

from kubelet import logs, streams


def test_exit_status_as_kubectl_reads_it():
    assert streams.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}
    failed = streams.exit_status(3, ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert failed["message"].endswith("[sh -c exit 3], exit code 3")
    assert streams.status_frame(streams.success())[0] == streams.ERROR


@pytest.mark.parametrize(
    ("offered", "supported", "chosen"),
    [
        (["v5.channel.k8s.io"], streams.CHANNEL_PROTOCOLS, "v5.channel.k8s.io"),
        (
            ["v4.channel.k8s.io", "v5.channel.k8s.io"],
            streams.CHANNEL_PROTOCOLS,
            "v5.channel.k8s.io",
        ),
        (["channel.k8s.io"], streams.CHANNEL_PROTOCOLS, None),
        (
            ["v5.channel.k8s.io", "v4.channel.k8s.io"],
            (streams.SPDY_PORTFORWARD, streams.V4),
            "v4.channel.k8s.io",
        ),
    ],
)
def test_protocol_choice(offered, supported, chosen):
    assert streams.choose(offered, supported) == chosen


def test_resize_and_port_headers():
    assert streams.parse_resize(b'{"Width":80,"Height":24}') == (80, 24)
    assert streams.parse_resize(b"nonsense") is None
    assert streams.port_header(2, 8080) == bytes([2, 0x90, 0x1F])


LOG = [
    b"2026-12-01T10:00:00.000000001Z stdout F first",
    b"2026-12-01T10:00:01.5Z stderr F oops",
    b"2026-12-01T10:00:02Z stdout P par",
    b"2026-12-01T10:00:02.1Z stdout F tial",
    b"not a cri line",
]
LINES = [line for raw in LOG if (line := logs.parse_line(raw)) is not None]
NOW = datetime.datetime(2026, 12, 1, 10, 0, 3, tzinfo=datetime.UTC)


def _text(query: dict[str, str]) -> bytes:
    opts = logs.parse_options(query, NOW)
    out = b"".join(logs.render(line, opts.timestamps) for line in logs.select(LINES, opts))
    return logs.Limiter(opts.limit_bytes).take(out)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({}, b"first\noops\npartial\n"),
        ({"tailLines": "1"}, b"tial\n"),
        ({"tailLines": "0"}, b""),
        ({"sinceSeconds": "2"}, b"oops\npartial\n"),
        ({"sinceTime": "2026-12-01T10:00:02Z"}, b"partial\n"),
        ({"limitBytes": "8"}, b"first\noo"),
        (
            {"timestamps": "true", "tailLines": "2"},
            b"2026-12-01T10:00:02Z par2026-12-01T10:00:02.1Z tial\n",
        ),
    ],
)
def test_log_options(query, text):
    assert _text(query) == text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"tailLines": "-1"}, "tailLines: Invalid value: -1"),
        ({"sinceSeconds": "0"}, "sinceSeconds: Invalid value: 0"),
        ({"sinceSeconds": "1", "sinceTime": "2026-12-01T10:00:00Z"}, "at most one"),
        ({"follow": "maybe"}, "follow: invalid value"),
        ({"sinceTime": "yesterday"}, "must be RFC3339"),
    ],
)
def test_bad_log_options_are_named(query, message):
    with pytest.raises(logs.OptionsError, match=message):
        logs.parse_options(query, NOW)


def test_records_split_at_newlines_keep_the_unfinished_rest():
    assert logs.split_records(b"a\nb\nc") == ([b"a", b"b"], b"c")
    assert logs.parse_line(b"2026-12-01T10:00:00Z stdout F") == logs.LogLine(
        "2026-12-01T10:00:00Z", "stdout", False, b""
    )
