"""Cron schedules for task timers: five fields, evaluated in UTC, as ACR's timer triggers.

`minute hour day-of-month month day-of-week`, each a `*`, a number, a range `a-b`, a
list `a,b`, any of those with a step `/n`, and names for months (`JAN`) and weekdays
(`MON`; 0 and 7 are Sunday). When both day fields are restricted, a day matching either
fires, as in Vixie cron.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# Five years cover every calendar combination that can fire at all (leap days included).
HORIZON = timedelta(days=366 * 5)


class CronError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_from: int = 0


FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day of month", 1, 31),
    Field("month", 1, 12, tuple(MONTHS), 1),
    Field("day of week", 0, 7, tuple(WEEKDAYS), 0),
)


def _number(text: str, field: Field) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names.index(upper) + field.names_from
    if not text.isdigit():
        raise CronError(f"{field.name}: {text!r} is not a number")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _values(text: str, field: Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field.name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _number(first, field), _number(last, field)
            if low > high:
                raise CronError(f"{field.name}: range {base!r} runs backwards")
        else:
            low = _number(base, field)
            high = field.high if step_text else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Schedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    # A day field starting with `*` leaves the choice of day to the other one.
    any_day: bool
    any_weekday: bool

    def _day_matches(self, moment: datetime) -> bool:
        by_day = moment.day in self.days
        by_weekday = moment.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def next_after(self, moment: datetime) -> datetime | None:
        """The first whole minute strictly after `moment` (UTC) that the schedule fires
        at, or None if none comes within five years."""
        at = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = at + HORIZON
        while at < end:
            if at.month not in self.months:
                at = (at.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(at):
                at = at.replace(hour=0, minute=0) + timedelta(days=1)
            elif at.hour not in self.hours:
                at = at.replace(minute=0) + timedelta(hours=1)
            elif at.minute not in self.minutes:
                at += timedelta(minutes=1)
            else:
                return at
        return None

    def next_after_ms(self, ms: int) -> int | None:
        found = self.next_after(datetime.fromtimestamp(ms / 1000, UTC))
        return None if found is None else int(found.timestamp() * 1000)


def parse(text: str) -> Schedule:
    """Parse a five-field cron expression; raise CronError saying what is wrong."""
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"{text!r} has {len(parts)} fields; a schedule has five: "
            "minute hour day-of-month month day-of-week"
        )
    minutes, hours, days, months, weekdays = (
        _values(part, field) for part, field in zip(parts, FIELDS, strict=True)
    )
    schedule = Schedule(
        " ".join(parts),
        minutes,
        hours,
        days,
        months,
        frozenset(d % 7 for d in weekdays),
        any_day=parts[2].startswith("*"),
        any_weekday=parts[4].startswith("*"),
    )
    if schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise CronError(f"{text!r} never fires")
    return schedule
