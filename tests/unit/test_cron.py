"""Cron schedules: parsing, and the next firing time against a minute-by-minute search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haven.tasks.cron import CronError, Schedule, parse


def fires_at(schedule: Schedule, moment: datetime) -> bool:
    by_day = moment.day in schedule.days
    by_weekday = moment.isoweekday() % 7 in schedule.weekdays
    day_ok = (
        by_day and by_weekday if schedule.any_day or schedule.any_weekday else by_day or by_weekday
    )
    return (
        moment.minute in schedule.minutes
        and moment.hour in schedule.hours
        and moment.month in schedule.months
        and day_ok
    )


def brute_next(schedule: Schedule, moment: datetime, limit_days: int = 800) -> datetime | None:
    at = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(limit_days * 24 * 60):
        if fires_at(schedule, at):
            return at
        at += timedelta(minutes=1)
    return None


def field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    ranged = st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}")
    stepped = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, 7)).map(
        lambda p: f"{p[0]}/{p[1]}"
    )
    part = st.one_of(st.just("*"), single, ranged, stepped)
    return st.lists(part, min_size=1, max_size=3).map(",".join)


@settings(max_examples=150, deadline=None)
@given(
    minute=field(0, 59),
    hour=field(0, 23),
    day=st.one_of(st.just("*"), field(1, 28)),
    month=st.one_of(st.just("*"), field(1, 12)),
    weekday=st.one_of(st.just("*"), field(0, 7)),
    start=st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)),
)
def test_next_after_is_the_first_matching_minute(
    minute: str, hour: str, day: str, month: str, weekday: str, start: datetime
) -> None:
    schedule = parse(f"{minute} {hour} {day} {month} {weekday}")
    moment = start.replace(tzinfo=UTC)
    expected = brute_next(schedule, moment)
    found = schedule.next_after(moment)
    assert expected is not None and found == expected


def test_names_sunday_and_the_either_day_rule() -> None:
    assert parse("0 0 * JAN-MAR SUN").months == frozenset({1, 2, 3})
    assert parse("0 0 * * 7").weekdays == parse("0 0 * * 0").weekdays == frozenset({0})
    # The 13th or any Friday, as Vixie cron reads two restricted day fields.
    schedule = parse("0 12 13 * FRI")
    found = schedule.next_after(datetime(2026, 11, 27, 13, 0, tzinfo=UTC))  # a Friday
    assert found == datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # the next Friday
    assert parse("0 0 29 2 *").next_after(datetime(2026, 3, 1, tzinfo=UTC)) == datetime(
        2028, 2, 29, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * *", "five"),
        ("* * * * * *", "five"),
        ("60 * * * *", "outside"),
        ("* 24 * * *", "outside"),
        ("* * 0 * *", "outside"),
        ("* * * 13 *", "outside"),
        ("* * * * 8", "outside"),
        ("5-1 * * * *", "backwards"),
        ("*/0 * * * *", "step"),
        ("a * * * *", "not a number"),
        ("* * * FOO *", "not a number"),
        ("0 0 31 2 *", "never fires"),
        ("", "five"),
    ],
)
def test_bad_schedules_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse(text)
