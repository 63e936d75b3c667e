"""Container logs as `kubectl logs` shows them: CRI log lines in, the user's text out.

The runtime's shims write each line of a container's output as

    <RFC3339Nano time> <stdout|stderr> <F|P> <text>

(`P` marks a partial line that continues in the next record, `F` a full one).
The kubelet's `containerLogs` endpoint turns those back into the text the
container wrote, optionally with the time in front (`timestamps`), only the
last `tailLines` records, only those at or after `sinceTime`/`sinceSeconds`,
and no more than `limitBytes` bytes. Everything here is pure; the server
reads the files and follows them.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_FRACTION = re.compile(r"\.(\d+)")


@dataclass(frozen=True)
class LogLine:
    time: str  # as written, RFC3339Nano
    stream: str  # stdout | stderr
    partial: bool
    text: bytes

    @property
    def when(self) -> datetime.datetime | None:
        return parse_time(self.time)


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since: datetime.datetime | None = None
    limit_bytes: int | None = None


class OptionsError(ValueError):
    """A query parameter the kubelet cannot use; the message names it."""


def parse_time(text: str) -> datetime.datetime | None:
    """RFC3339 with up to nanoseconds (Python keeps microseconds), or None."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def parse_line(raw: bytes) -> LogLine | None:
    """One record of a CRI log file (without its newline), or None if it is not one."""
    parts = raw.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    text = parts[3] if len(parts) == 4 else b""
    return LogLine(parts[0].decode(errors="replace"), parts[1].decode(), parts[2] == b"P", text)


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "").lower()
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise OptionsError(f'{name}: invalid value "{query[name]}": must be true or false')


def _positive(query: Mapping[str, str], name: str, minimum: int) -> int | None:
    if name not in query or query[name] == "":
        return None
    try:
        value = int(query[name])
    except ValueError:
        raise OptionsError(f'{name}: invalid value "{query[name]}": must be an integer') from None
    if value < minimum:
        raise OptionsError(
            f"{name}: Invalid value: {value}: must be greater than or equal to {minimum}"
        )
    return value


def parse_options(query: Mapping[str, str], now: datetime.datetime) -> LogOptions:
    """PodLogOptions from the query, validated as the API validates them."""
    since_seconds = _positive(query, "sinceSeconds", 1)
    since_time_text = query.get("sinceTime", "")
    if since_seconds is not None and since_time_text:
        raise OptionsError("sinceSeconds and sinceTime: at most one of them may be specified")
    since = None
    if since_seconds is not None:
        since = now - datetime.timedelta(seconds=since_seconds)
    elif since_time_text:
        since = parse_time(since_time_text)
        if since is None:
            raise OptionsError(f'sinceTime: invalid value "{since_time_text}": must be RFC3339')
    return LogOptions(
        follow=_flag(query, "follow"),
        previous=_flag(query, "previous"),
        timestamps=_flag(query, "timestamps"),
        tail_lines=_positive(query, "tailLines", 0),
        since=since,
        limit_bytes=_positive(query, "limitBytes", 1),
    )


def select(lines: Iterable[LogLine], opts: LogOptions) -> list[LogLine]:
    """The records to show before following: those since `since`, then the last `tail`."""
    chosen = [
        line
        for line in lines
        if opts.since is None or ((w := line.when) is not None and w >= opts.since)
    ]
    if opts.tail_lines is not None:
        chosen = chosen[len(chosen) - opts.tail_lines :] if opts.tail_lines else []
    return chosen


def render(line: LogLine, timestamps: bool) -> bytes:
    """The text as the container wrote it; a partial record gets no newline."""
    prefix = line.time.encode() + b" " if timestamps else b""
    return prefix + line.text + (b"" if line.partial else b"\n")


class Limiter:
    """Counts bytes out and cuts at `limitBytes`, as the kubelet's limit writer does."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    @property
    def done(self) -> bool:
        return self.left is not None and self.left <= 0

    def take(self, data: bytes) -> bytes:
        if self.left is None:
            return data
        data = data[: max(self.left, 0)]
        self.left -= len(data)
        return data


def split_records(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole newline-ended records of `buffer`, and the unfinished rest."""
    *records, rest = buffer.split(b"\n")
    return records, rest
