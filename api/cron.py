"""Cron schedules as CronJobs read them: five fields, names, steps and the @macros.

Kubernetes parses `spec.schedule` with robfig/cron's standard parser, so this
follows its rules: `minute hour day-of-month month day-of-week`, each field a
list of `*`, `a`, `a-b` with an optional `/step`; month and weekday names
(`jan`, `mon`); `?` means `*`; `7` is Sunday too. When both day fields are
restricted a day matches if *either* does (the classic cron rule); when one is
`*`, both must. Times are wall-clock times in the CronJob's `timeZone`
(default UTC).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS = (  # name, low, high, names (index + offset = value)
    ("minute", 0, 59, None, 0),
    ("hour", 0, 23, None, 0),
    ("day of month", 1, 31, None, 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day of week", 0, 7, _DAYS, 0),
)


class CronError(ValueError):
    """The schedule cannot be parsed; the message says which part and why."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_star: bool
    weekdays_star: bool

    def day_matches(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow


def _value(text: str, low: int, names: list[str] | None, offset: int) -> int:
    if names and text.lower() in names:
        return names.index(text.lower()) + offset
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}")
    return int(text)


def _field(
    text: str, name: str, low: int, high: int, names: list[str] | None, offset: int
) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"bad step {step_text!r} in {name} field {text!r}")
            step = int(step_text)
        if rng in ("*", "?"):
            start, end = low, high
        elif "-" in rng:
            a, b = rng.split("-", 1)
            start, end = _value(a, low, names, offset), _value(b, low, names, offset)
        else:
            start = _value(rng, low, names, offset)
            end = high if step_text else start
        if start < low or end > high or start > end:
            raise CronError(
                f"{name} field {text!r}: {start}-{end} is outside {low}-{high}"
                if start <= end
                else f"beginning of range ({start}) beyond end of range ({end}): {rng}"
            )
        out.update(range(start, end + 1, step))
    return out


def parse(text: str) -> Schedule:
    """A schedule from cron text; CronError when it is not one."""
    spec = text.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if spec.startswith("@"):
        if spec not in MACROS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = MACROS[spec]
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {text}")
    sets = [_field(p, *f) for p, f in zip(parts, _FIELDS, strict=True)]
    weekdays = {d % 7 for d in sets[4]}
    return Schedule(
        frozenset(sets[0]),
        frozenset(sets[1]),
        frozenset(sets[2]),
        frozenset(sets[3]),
        frozenset(weekdays),
        parts[2] in ("*", "?"),
        parts[4] in ("*", "?"),
    )


def zone(name: str | None) -> datetime.tzinfo:
    """The tzinfo of a CronJob's timeZone; CronError for an unknown zone."""
    if not name:
        return datetime.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CronError(f"unknown time zone {name}") from e


def next_after(
    schedule: Schedule, after: datetime.datetime, tz: datetime.tzinfo
) -> datetime.datetime | None:
    """The first scheduled moment strictly after `after` (aware, returned in UTC).

    Walks days, then hours, then minutes, in the zone's wall-clock time, so a
    schedule that fires once a year costs a few hundred steps, not half a
    million. None when nothing matches within five years (e.g. 30 February).
    """
    local = after.astimezone(tz).replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    day = local.date()
    for _ in range(366 * 5):
        if schedule.day_matches(day):
            for hour in sorted(schedule.hours):
                for minute in sorted(schedule.minutes):
                    wall = datetime.datetime.combine(day, datetime.time(hour, minute))
                    moment = wall.replace(tzinfo=tz)
                    if moment.astimezone(datetime.UTC) > after:
                        return moment.astimezone(datetime.UTC)
        day += datetime.timedelta(days=1)
    return None
