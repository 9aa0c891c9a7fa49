"""Business-hours calendar arithmetic: known answers, DST, validation, and properties.

The hand-written cases pin exact instants (in UTC, which is what the calendar returns).
The hypothesis properties check the invariants the SLA clocks rely on over random
calendars, and compare ``elapsed`` with a slow, independently written oracle.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servicedesk.sla import calendar as calendar_module
from servicedesk.sla.calendar import BusinessCalendar

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)
US = timedelta(microseconds=1)
MON_FRI = range(5)


def at(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def office(tz: str = "Europe/Berlin", days=MON_FRI, holidays=()) -> BusinessCalendar:
    return BusinessCalendar(tz, {d: [(time(9), time(17))] for d in days}, holidays)


def all_day(tz: str, days=range(7)) -> BusinessCalendar:
    """00:00–24:00 on ``days``; a holiday long ago keeps it off the 24×7 fast path."""
    return BusinessCalendar(tz, {d: [(time(0), None)] for d in days}, [date(1990, 1, 1)])


NIGHTS = {d: [(time(0), time(6)), (time(22), None)] for d in range(7)}


# -- known answers ------------------------------------------------------------------------

def test_three_business_hours_from_friday_afternoon_end_on_monday_morning():
    cal = office()
    due = cal.add(at(BERLIN, 2024, 3, 1, 16), 3 * H)  # Friday 16:00
    assert due == at(BERLIN, 2024, 3, 4, 11) == utc(2024, 3, 4, 10)
    assert due.tzinfo is UTC
    assert cal.elapsed(at(BERLIN, 2024, 3, 1, 16), due) == 3 * H


def test_counting_from_a_weekend_starts_at_the_next_working_interval():
    cal = office()
    assert cal.add(at(BERLIN, 2024, 3, 2, 10, 17), 3 * H) == at(BERLIN, 2024, 3, 4, 12)
    assert cal.add(at(BERLIN, 2024, 3, 4, 7), 3 * H) == at(BERLIN, 2024, 3, 4, 12)  # Mon early
    assert cal.add(at(BERLIN, 2024, 3, 4, 17), H) == at(BERLIN, 2024, 3, 5, 10)     # Mon at end


def test_a_duration_used_up_exactly_at_an_intervals_end_returns_that_end():
    cal = office()
    assert cal.add(at(BERLIN, 2024, 3, 4, 9), 8 * H) == at(BERLIN, 2024, 3, 4, 17)
    assert cal.add(at(BERLIN, 2024, 3, 1, 9), 8 * H) == at(BERLIN, 2024, 3, 1, 17)  # not Monday
    assert cal.add(at(BERLIN, 2024, 3, 1, 9), 8 * H + US) == at(BERLIN, 2024, 3, 4, 9) + US


def test_zero_duration_returns_the_start_even_outside_working_time():
    cal = office()
    saturday = at(BERLIN, 2024, 3, 2, 10, 17, 5, 123)
    assert cal.add(saturday, timedelta(0)) == saturday
    assert cal.add(saturday, timedelta(0)).tzinfo is UTC
    assert cal.next_working(saturday) == at(BERLIN, 2024, 3, 4, 9)


def test_elapsed_is_zero_when_end_is_not_after_start():
    cal = office()
    a = at(BERLIN, 2024, 3, 4, 10)
    assert cal.elapsed(a, a) == timedelta(0)
    assert cal.elapsed(a, a - H) == timedelta(0)


def test_elapsed_over_weekends_and_a_week():
    cal = office()
    assert cal.elapsed(at(BERLIN, 2024, 3, 1, 16), at(BERLIN, 2024, 3, 4, 11)) == 3 * H
    assert cal.elapsed(at(BERLIN, 2024, 3, 4), at(BERLIN, 2024, 3, 11)) == 40 * H
    assert cal.elapsed(at(BERLIN, 2024, 3, 2), at(BERLIN, 2024, 3, 3, 23)) == timedelta(0)


def test_a_year_of_office_hours_lands_on_the_fifty_second_friday():
    for tz in ("UTC", "Europe/Berlin"):
        cal = office(tz)
        start = at(ZoneInfo(tz), 2024, 1, 1, 9)  # Monday
        assert cal.add(start, 2080 * H) == at(ZoneInfo(tz), 2024, 12, 27, 17)
        assert cal.elapsed(start, at(ZoneInfo(tz), 2024, 12, 27, 17)) == 2080 * H


def test_split_shift():
    cal = BusinessCalendar("Europe/Berlin",
                           {d: [(time(8), time(12)), (time(13), time(17))] for d in MON_FRI})
    assert cal.add(at(BERLIN, 2024, 3, 4, 11), H) == at(BERLIN, 2024, 3, 4, 12)
    assert cal.add(at(BERLIN, 2024, 3, 4, 11), 2 * H) == at(BERLIN, 2024, 3, 4, 14)
    assert cal.add(at(BERLIN, 2024, 3, 4, 12, 30), H) == at(BERLIN, 2024, 3, 4, 14)
    assert cal.add(at(BERLIN, 2024, 3, 1, 11), 6 * H) == at(BERLIN, 2024, 3, 4, 9)
    assert cal.elapsed(at(BERLIN, 2024, 3, 4, 10), at(BERLIN, 2024, 3, 4, 15)) == 4 * H
    assert not cal.is_working(at(BERLIN, 2024, 3, 4, 12, 30))
    assert cal.is_working(at(BERLIN, 2024, 3, 4, 13))
    assert not cal.is_working(at(BERLIN, 2024, 3, 4, 17))


def test_sunday_to_thursday_week_in_jerusalem():
    cal = BusinessCalendar("Asia/Jerusalem", {d: [(time(8), time(17))] for d in (6, 0, 1, 2, 3)})
    thursday = at(ZoneInfo("Asia/Jerusalem"), 2024, 6, 13, 16)
    assert cal.add(thursday, 2 * H) == utc(2024, 6, 16, 6)  # Sunday 09:00 IDT
    assert cal.elapsed(thursday, utc(2024, 6, 16, 6)) == 2 * H
    assert cal.next_working(at(ZoneInfo("Asia/Jerusalem"), 2024, 6, 14, 9)) == utc(2024, 6, 16, 5)


def test_saturday_to_wednesday_week_in_tehran():
    cal = BusinessCalendar("Asia/Tehran", {d: [("08:00", "16:00")] for d in (5, 6, 0, 1, 2)})
    wednesday = at(ZoneInfo("Asia/Tehran"), 2024, 6, 12, 15)
    assert cal.add(wednesday, 2 * H) == utc(2024, 6, 15, 5, 30)  # Saturday 09:00 +03:30
    assert cal.elapsed(wednesday, utc(2024, 6, 15, 5, 30)) == 2 * H


def test_a_holiday_range_skips_monday_and_tuesday():
    cal = office(holidays=[date(2024, 3, 29), (date(2024, 4, 1), date(2024, 4, 2))])
    assert cal.add(at(BERLIN, 2024, 3, 28, 16), 3 * H) == at(BERLIN, 2024, 4, 3, 11)
    assert cal.add(at(BERLIN, 2024, 3, 28, 16), 3 * H) == utc(2024, 4, 3, 9)
    assert cal.elapsed(at(BERLIN, 2024, 3, 28, 9), at(BERLIN, 2024, 4, 5)) == 24 * H
    assert cal.is_holiday(date(2024, 4, 2)) and not cal.is_holiday(date(2024, 4, 3))
    assert not cal.is_working(at(BERLIN, 2024, 4, 1, 10))
    assert cal.next_working(at(BERLIN, 2024, 3, 28, 17)) == at(BERLIN, 2024, 4, 3, 9)


def test_a_long_holiday_is_jumped_by_add_and_next_working():
    cal = office(holidays=[(date(2024, 7, 1), date(2024, 9, 30))])
    assert cal.next_working(at(BERLIN, 2024, 6, 28, 18)) == at(BERLIN, 2024, 10, 1, 9)
    assert cal.add(at(BERLIN, 2024, 6, 28, 16), 2 * H) == at(BERLIN, 2024, 10, 1, 10)
    assert cal.elapsed(at(BERLIN, 2024, 6, 28, 16), at(BERLIN, 2024, 10, 1, 10)) == 2 * H


@pytest.mark.parametrize("tz, spring, fall", [
    ("Europe/Berlin", date(2024, 3, 31), date(2024, 10, 27)),
    ("America/New_York", date(2024, 3, 10), date(2024, 11, 3)),
])
def test_a_24_hour_day_is_23_hours_at_spring_forward_and_25_at_fall_back(tz, spring, fall):
    zone = ZoneInfo(tz)
    every_day = all_day(tz)
    assert not every_day.is_always
    one = timedelta(days=1)
    for day, hours in ((spring, 23), (fall, 25), (spring - one, 24), (fall + one, 24)):
        midnight = datetime.combine(day, time(0), zone)
        following = datetime.combine(day + one, time(0), zone)
        assert every_day.elapsed(midnight, following) == hours * H
        assert every_day.add(midnight, hours * H) == following
    sundays = all_day(tz, days=[6])  # both changes happen on a Sunday
    week = timedelta(days=7)
    assert sundays.elapsed(datetime.combine(spring - 6 * one, time(0), zone),
                           datetime.combine(spring + one, time(0), zone)) == 23 * H
    assert sundays.elapsed(datetime.combine(fall - 6 * one, time(0), zone),
                           datetime.combine(fall + one, time(0), zone)) == 25 * H
    saturday_noon = datetime.combine(spring - one, time(12), zone)
    assert sundays.add(saturday_noon, 23 * H) == datetime.combine(spring + one, time(0), zone)
    assert sundays.add(saturday_noon, 23 * H + US) == datetime.combine(spring + week, time(0),
                                                                       zone) + US
    assert sundays.add(datetime.combine(fall - one, time(12), zone), 25 * H) \
        == datetime.combine(fall + one, time(0), zone)


def test_night_shift_across_the_berlin_dst_weekends():
    cal = BusinessCalendar("Europe/Berlin", NIGHTS)
    # spring: Sat 22:00 CET .. Sun 06:00 CEST is 7 real hours
    assert cal.elapsed(at(BERLIN, 2024, 3, 30, 21), at(BERLIN, 2024, 3, 31, 7)) == 7 * H
    assert cal.add(at(BERLIN, 2024, 3, 30, 22), 7 * H) == utc(2024, 3, 31, 4)   # 06:00 CEST
    assert cal.add(at(BERLIN, 2024, 3, 30, 22), 8 * H) == utc(2024, 3, 31, 21)  # 23:00 CEST
    # fall: Sat 22:00 CEST .. Sun 06:00 CET is 9 real hours
    assert cal.elapsed(at(BERLIN, 2024, 10, 26, 21), at(BERLIN, 2024, 10, 27, 7)) == 9 * H
    assert cal.add(at(BERLIN, 2024, 10, 26, 22), 9 * H) == utc(2024, 10, 27, 5)  # 06:00 CET
    assert cal.add(at(BERLIN, 2024, 10, 26, 22), 2 * H) == utc(2024, 10, 26, 22)  # 24:00 CEST


def test_night_shift_across_the_new_york_dst_weekends():
    cal = BusinessCalendar("America/New_York", NIGHTS)
    assert cal.add(at(NEW_YORK, 2024, 3, 9, 22), 7 * H) == utc(2024, 3, 10, 10)  # 06:00 EDT
    assert cal.elapsed(at(NEW_YORK, 2024, 3, 9, 12), at(NEW_YORK, 2024, 3, 10, 12)) == 7 * H
    assert cal.add(at(NEW_YORK, 2024, 11, 2, 22), 9 * H) == utc(2024, 11, 3, 11)  # 06:00 EST
    assert cal.elapsed(at(NEW_YORK, 2024, 11, 2, 12), at(NEW_YORK, 2024, 11, 3, 12)) == 9 * H


def test_a_holiday_drops_its_own_part_of_a_night_shift_only():
    # nights Monday -> Saturday morning
    week = {0: [(time(22), None)], 5: [(time(0), time(6))]}
    week.update({d: [(time(0), time(6)), (time(22), None)] for d in range(1, 5)})
    monday, wednesday = at(BERLIN, 2024, 3, 4, 20), at(BERLIN, 2024, 3, 6, 12)
    assert BusinessCalendar("Europe/Berlin", week).elapsed(monday, wednesday) == 16 * H
    tuesday_off = BusinessCalendar("Europe/Berlin", week, [date(2024, 3, 5)])
    assert tuesday_off.elapsed(monday, wednesday) == 8 * H  # Mon 22-24 + Wed 00-06
    assert tuesday_off.add(monday, 3 * H) == at(BERLIN, 2024, 3, 6, 1)


def test_wall_times_in_a_dst_gap_start_when_the_clocks_jump():
    # 02:30 does not exist on 31 March 2024 in Berlin: the interval starts at 03:00 CEST
    cal = BusinessCalendar("Europe/Berlin", {6: [(time(2, 30), time(5))]})
    saturday, monday = at(BERLIN, 2024, 3, 30), at(BERLIN, 2024, 4, 1)
    assert cal.elapsed(saturday, monday) == 2 * H
    assert cal.add(saturday, US) == utc(2024, 3, 31, 1) + US
    assert cal.next_working(saturday) == utc(2024, 3, 31, 1)
    # an interval wholly inside the gap is empty that day, and 1 h on other Sundays
    gap_only = BusinessCalendar("Europe/Berlin", {6: [(time(2), time(3))], 0: [("09:00", "10:00")]})
    assert gap_only.elapsed(saturday, at(BERLIN, 2024, 3, 31, 23)) == timedelta(0)
    assert gap_only.add(saturday, H) == at(BERLIN, 2024, 4, 1, 10)
    assert gap_only.elapsed(at(BERLIN, 2024, 3, 23), at(BERLIN, 2024, 3, 25)) == H


def test_a_repeated_wall_time_means_its_first_occurrence():
    # 02:30 happens twice on 27 October 2024 in Berlin: from the first 02:30 (CEST) to
    # 03:00 (CET) is 1.5 h of real time
    cal = BusinessCalendar("Europe/Berlin", {6: [(time(2, 30), time(3))]})
    saturday = at(BERLIN, 2024, 10, 26)
    assert cal.elapsed(saturday, at(BERLIN, 2024, 10, 28)) == 90 * timedelta(minutes=1)
    assert cal.next_working(saturday) == utc(2024, 10, 27, 0, 30)
    assert cal.add(saturday, 90 * timedelta(minutes=1)) == utc(2024, 10, 27, 2)


def test_dst_at_midnight_in_santiago():
    # 8 Sep 2024: 00:00 does not exist (-04 -> -03); 6 Apr 2024: 23:00-24:00 happens twice
    sunday = all_day("America/Santiago", days=[6])
    santiago = ZoneInfo("America/Santiago")
    assert sunday.elapsed(at(santiago, 2024, 9, 7), at(santiago, 2024, 9, 10)) == 23 * H
    assert sunday.next_working(at(santiago, 2024, 9, 7, 12)) == utc(2024, 9, 8, 4)
    saturday = all_day("America/Santiago", days=[5])
    assert saturday.elapsed(at(santiago, 2024, 4, 5), at(santiago, 2024, 4, 8)) == 25 * H
    assert saturday.add(at(santiago, 2024, 4, 6), 25 * H) == utc(2024, 4, 7, 4)


def test_dst_at_midnight_in_tehran_before_2023():
    tehran = BusinessCalendar("Asia/Tehran", {d: [("00:00", "24:00")] for d in range(7)},
                              [date(1990, 1, 1)])
    # clocks jumped 00:00 -> 01:00 on 22 March 2022 and fell back 24:00 -> 23:00 on 21 September
    assert tehran.elapsed(utc(2022, 3, 20, 20, 30), utc(2022, 3, 22, 19, 30)) == 47 * H
    assert tehran.elapsed(utc(2022, 9, 20, 19, 30), utc(2022, 9, 22, 20, 30)) == 49 * H


def test_a_fall_back_across_midnight_belongs_to_the_new_date():
    # St. John's fell back at 00:01 NDT on Sunday 7 Nov 2010 to 23:01 NST on Saturday:
    # Sunday began at the first 00:00 (02:30 UTC); the repeated Saturday-evening hour
    # that follows reads "Saturday" but lies inside Sunday's working day
    sundays = BusinessCalendar("America/St_Johns", {6: [(time(0), None)]})
    st_johns = ZoneInfo("America/St_Johns")
    saturday_noon = at(st_johns, 2010, 11, 6, 12)
    second_pass = utc(2010, 11, 7, 3)  # 23:30 NST on Saturday
    assert second_pass.astimezone(st_johns).day == 6
    assert sundays.next_working(saturday_noon) == utc(2010, 11, 7, 2, 30)
    assert sundays.is_working(second_pass)
    assert sundays.elapsed(saturday_noon, second_pass) == 30 * timedelta(minutes=1)
    assert sundays.add(saturday_noon, 30 * timedelta(minutes=1)) == second_pass
    assert sundays.elapsed(saturday_noon, at(st_johns, 2010, 11, 8)) == 25 * H


def test_the_24x7_calendar_is_plain_timedelta_arithmetic():
    cal = BusinessCalendar.always()
    assert cal.is_always and BusinessCalendar.always("Asia/Tehran").is_always
    start = utc(2024, 3, 30, 23, 59, 59, 999_999)
    long = timedelta(days=400, microseconds=3)
    assert cal.add(start, long) == start + long
    # real time, not Python's wall-clock arithmetic on a zoned datetime (which would
    # skip the DST hour): convert to UTC before adding
    berlin = start.astimezone(BERLIN)
    assert cal.add(berlin, long) == berlin.astimezone(UTC) + long != berlin + long
    assert cal.add(start, H).tzinfo is UTC
    assert cal.elapsed(start, start + timedelta(days=3)) == timedelta(days=3)
    assert cal.next_working(start) == start and cal.is_working(start)


def test_strings_touching_intervals_and_holidays_are_normalised():
    cal = BusinessCalendar("UTC", {0: [("13:00", "24:00"), ("08:00", "13:00")], 2: []},
                           [(date(2024, 1, 3), date(2024, 1, 5)), date(2024, 1, 6),
                            date(2024, 1, 1)])
    assert cal.week == {0: [(time(8), None)]}
    assert cal.holidays == [(date(2024, 1, 1), date(2024, 1, 1)),
                            (date(2024, 1, 3), date(2024, 1, 6))]
    assert "Mon 08:00–24:00" in repr(cal)
    every_day = BusinessCalendar("UTC", {d: [(time(0), time(12)), (time(12), None)]
                                         for d in range(7)})
    assert every_day.is_always


# -- validation ----------------------------------------------------------------------------

NINE_FIVE = [(time(9), time(17))]


@pytest.mark.parametrize("tz, week, holidays, message", [
    ("Mars/Olympus_Mons", {0: NINE_FIVE}, (), "unknown time zone 'Mars/Olympus_Mons'"),
    ("", {0: NINE_FIVE}, (), "unknown time zone"),
    ("../etc/passwd", {0: NINE_FIVE}, (), "unknown time zone"),
    ("UTC", {0: [(time(17), time(9))]}, (), "Monday: interval 17:00–09:00 ends at or before"),
    ("UTC", {0: [(time(9), time(9))]}, (), "ends at or before it starts"),
    ("UTC", {2: [(time(22), time(0))]}, (), "a shift past midnight is two intervals"),
    ("UTC", {1: [(time(9), time(12)), (time(11), time(17))]}, (),
     "Tuesday: intervals 09:00–12:00 and 11:00–17:00 overlap"),
    ("UTC", {1: [(time(9), time(17)), (time(10), time(11))]}, (), "overlap"),
    ("UTC", {7: NINE_FIVE}, (), "weekday 7 is outside 0..6"),
    ("UTC", {-1: NINE_FIVE}, (), "weekday -1 is outside 0..6"),
    ("UTC", {"1": NINE_FIVE}, (), "outside 0..6"),
    ("UTC", {}, (), "no working time at all"),
    ("UTC", {0: [], 3: []}, (), "no working time at all"),
    ("UTC", {0: [(None, time(9))]}, (), "24:00 (None) can only end an interval"),
    ("UTC", {0: [(time(9), time.max)]}, (), "time.max is ambiguous"),
    ("UTC", {0: [("9h", "17:00")]}, (), "not a time of day"),
    ("UTC", {0: [("09:00", "25:00")]}, (), "not a time of day"),
    ("UTC", {0: [(time(9, tzinfo=UTC), time(17))]}, (), "carries a time zone"),
    ("UTC", {0: [(time(9),)]}, (), "not a (start, end) pair"),
    ("UTC", {0: NINE_FIVE}, [(date(2024, 1, 5), date(2024, 1, 1))], "ends before it starts"),
    ("UTC", {0: NINE_FIVE}, ["2024-01-01"], "neither a date nor"),
    ("UTC", {0: NINE_FIVE}, [datetime(2024, 1, 1)], "neither a date nor"),
])
def test_invalid_calendars_are_refused_with_a_clear_message(tz, week, holidays, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BusinessCalendar(tz, week, holidays)


def test_naive_instants_and_negative_durations_are_refused():
    cal = office()
    with pytest.raises(ValueError, match="naive"):
        cal.add(datetime(2024, 3, 4, 9), H)
    with pytest.raises(ValueError, match="naive"):
        cal.elapsed(at(BERLIN, 2024, 3, 4, 9), datetime(2024, 3, 5, 9))
    with pytest.raises(ValueError, match="naive"):
        BusinessCalendar.always().add(datetime(2024, 3, 4, 9), H)
    with pytest.raises(ValueError, match="negative"):
        cal.add(at(BERLIN, 2024, 3, 4, 9), -US)
    with pytest.raises(ValueError, match="timedelta"):
        cal.add(at(BERLIN, 2024, 3, 4, 9), 3600)


# -- properties ------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tehran", "America/Santiago",
         "Australia/Lord_Howe", "Asia/Jerusalem"]
LOW, HIGH = datetime(2021, 1, 1), datetime(2025, 12, 31)
MINUTE = timedelta(minutes=1)
DAY_US = 86_400_000_000


def _transitions(name: str) -> list[datetime]:
    """UTC instants (to the hour) around which the zone's offset changes, 2021–2025."""
    tz, found = ZoneInfo(name), []
    u = LOW.replace(tzinfo=UTC)
    previous = u.astimezone(tz).utcoffset()
    while u.year < 2026:
        offset = u.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(u)
            previous = offset
        u += H
    return found


TRANSITIONS = {name: _transitions(name) for name in ZONES}

clock_minute = st.one_of(st.integers(0, 48).map(lambda half_hours: half_hours * 30),
                         st.integers(0, 1440))


@st.composite
def day_intervals(draw) -> list[tuple[time, time | None]]:
    points = sorted(draw(st.lists(clock_minute, unique=True, max_size=6)))
    if len(points) % 2:
        points.pop()

    def clock(minutes: int) -> time | None:
        return None if minutes == 1440 else time(minutes // 60, minutes % 60)

    return [(clock(points[i]), clock(points[i + 1])) for i in range(0, len(points), 2)]


TEMPLATES = [
    {d: [(time(9), time(17))] for d in range(5)},                           # Mon-Fri
    {d: [(time(8), time(12)), (time(13), time(17))] for d in (6, 0, 1, 2, 3)},  # Sun-Thu split
    {d: [(time(8), time(16))] for d in (5, 6, 0, 1, 2)},                    # Sat-Wed
    NIGHTS,
    {d: [(time(0), None)] for d in range(7)},
    {6: [(time(0), None)]},
    {d: [(time(1), time(3, 30))] for d in range(7)},                         # DST hours
]

weeks = st.one_of(
    st.sampled_from(TEMPLATES),
    st.lists(day_intervals(), min_size=7, max_size=7).map(
        lambda days: {d: intervals for d, intervals in enumerate(days) if intervals}),
).filter(lambda week: any(week.values()))

holiday_date = st.dates(LOW.date(), HIGH.date())
holidays = st.lists(st.one_of(
    holiday_date,
    st.tuples(holiday_date, st.integers(0, 20)).map(lambda p: (p[0], p[0] + timedelta(days=p[1]))),
), max_size=6)


@st.composite
def calendars(draw) -> BusinessCalendar:
    return BusinessCalendar(draw(st.sampled_from(ZONES)), draw(weeks), draw(holidays))


@st.composite
def instants(draw, cal: BusinessCalendar) -> datetime:
    """Anywhere in 2021–2025, often within days of a DST change of the calendar's zone."""
    anywhere = st.datetimes(LOW, HIGH).map(lambda naive: naive.replace(tzinfo=UTC))
    near = TRANSITIONS[cal.timezone]
    if near:
        anywhere = st.one_of(anywhere, st.builds(
            lambda base, shift: base + shift, st.sampled_from(near),
            st.timedeltas(-timedelta(days=3), timedelta(days=3))))
    return draw(anywhere)


# how far apart two instants of one example are: mostly up to 60 days, sometimes years
gaps = st.one_of(st.timedeltas(timedelta(0), timedelta(days=60)),
                 st.timedeltas(timedelta(0), timedelta(days=3 * 365)))

durations = st.one_of(
    st.integers(0, 12 * 60).map(lambda minutes: minutes * MINUTE),
    st.integers(0, 60 * DAY_US).map(lambda us: us * US),
    st.integers(1, 60 * 24).map(lambda hours: hours * H),
)


def weekly(cal: BusinessCalendar) -> timedelta:
    """Nominal business time of a week (wall clock, no holidays)."""
    def clock(t: time | None) -> timedelta:
        return timedelta(days=1) if t is None else datetime.combine(LOW, t) - LOW
    return sum((clock(e) - clock(s) for day in cal.week.values() for s, e in day), timedelta(0))


def durations_for(cal: BusinessCalendar, weeks: int = 9, base=durations):
    """``base`` durations, folded into ``weeks`` nominal weeks of the calendar, so a
    calendar that works one minute a week is not asked to count 60 days (1,600 years)."""
    bound = weekly(cal) * weeks
    return base.map(lambda d: d if d <= bound else d % (bound + US))

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _local_date(cal: BusinessCalendar, instant: datetime) -> date:
    return instant.astimezone(ZoneInfo(cal.timezone)).date()


@PROPERTY
@given(data=st.data(), cal=calendars())
def test_elapsed_undoes_add_and_add_lands_in_working_time(data, cal):
    start = data.draw(instants(cal))
    duration = data.draw(durations_for(cal))
    due = cal.add(start, duration)
    assert due.tzinfo is UTC
    if duration == timedelta(0):
        assert due == start
        return
    assert due > start
    assert cal.elapsed(start, due) == duration
    # the last microsecond before the due instant is working time (so the due instant is
    # inside an interval or exactly at its end), and not on a holiday
    assert cal.is_working(due - US)
    assert not cal.is_holiday(_local_date(cal, due - US))
    assert cal.elapsed(due - US, due) == US


@PROPERTY
@given(data=st.data(), cal=calendars())
def test_add_is_monotonic_in_the_duration(data, cal):
    start = data.draw(instants(cal))
    d1, d2 = sorted((data.draw(durations_for(cal)), data.draw(durations_for(cal))))
    assert cal.add(start, d1) <= cal.add(start, d2)
    if d1 > timedelta(0):
        assert cal.add(start, d1) < cal.add(start, d1 + US)


@PROPERTY
@given(data=st.data(), cal=calendars())
def test_elapsed_is_additive(data, cal):
    a = data.draw(instants(cal))
    b = a + data.draw(gaps)
    c = b + data.draw(gaps)
    assert cal.elapsed(a, b) + cal.elapsed(b, c) == cal.elapsed(a, c)
    assert cal.elapsed(c, a) == timedelta(0)


@PROPERTY
@given(data=st.data(), cal=calendars())
def test_add_of_elapsed_returns_the_end_when_it_is_working_time(data, cal):
    start = data.draw(instants(cal))
    end = start + data.draw(gaps)
    spent = cal.elapsed(start, end)
    assert spent <= end - start
    if spent > timedelta(0):
        back = cal.add(start, spent)
        assert back <= end
        assert cal.elapsed(back, end) == timedelta(0)
        if cal.is_working(end - US):
            assert back == end


@PROPERTY
@given(data=st.data(), cal=calendars())
def test_next_working_and_is_working_agree_with_elapsed(data, cal):
    instant = data.draw(instants(cal))
    assert cal.is_working(instant) == (cal.elapsed(instant, instant + US) == US)
    following = cal.next_working(instant)
    assert following >= instant and cal.is_working(following)
    assert cal.elapsed(instant, following) == timedelta(0)
    assert (following == instant) == cal.is_working(instant)


@PROPERTY
@given(data=st.data(), name=st.sampled_from(ZONES))
def test_working_all_day_every_day_is_real_time_in_every_zone(data, name):
    fast, slow = BusinessCalendar.always(name), all_day(name)
    a = data.draw(instants(slow))
    b = a + data.draw(gaps)
    duration = data.draw(durations)
    for cal in (fast, slow):
        assert cal.elapsed(a, b) == b - a
        assert cal.add(a, duration) == a + duration


def _first_reading_at_or_after(tz: ZoneInfo, naive: datetime) -> datetime:
    """Oracle: the earliest instant whose wall clock reads ``naive`` or later.

    Written differently from the calendar: try the candidate instants and keep those that
    really read ``naive``; in a gap, step minute by minute (tz data changes offsets on
    whole minutes) until the clock reads past it.
    """
    offsets = (naive.replace(tzinfo=tz, fold=fold).utcoffset() for fold in (0, 1))
    candidates = sorted((naive - offset).replace(tzinfo=UTC) for offset in offsets)
    for u in candidates:
        if u.astimezone(tz).replace(tzinfo=None) == naive:
            return u
    u = candidates[0].replace(second=0, microsecond=0)
    while u.astimezone(tz).replace(tzinfo=None) < naive:
        u += MINUTE
    return u


def _oracle_elapsed(cal: BusinessCalendar, week, holiday_list, a: datetime, b: datetime):
    tz = ZoneInfo(cal.timezone)
    off = set()
    for item in holiday_list:
        first, last = item if isinstance(item, tuple) else (item, item)
        off.update(first + timedelta(days=i) for i in range((last - first).days + 1))
    total = timedelta(0)
    day = _local_date(cal, a) - timedelta(days=1)
    while day <= _local_date(cal, b) + timedelta(days=1):
        if day not in off:
            for start, end in week.get(day.weekday(), []):
                midnight = datetime.combine(day, time(0))
                lo = _first_reading_at_or_after(tz, datetime.combine(day, start))
                hi = _first_reading_at_or_after(
                    tz, midnight + timedelta(days=1) if end is None else datetime.combine(day, end))
                lo, hi = max(lo, a), min(hi, b)
                if hi > lo:
                    total += hi - lo
        day += timedelta(days=1)
    return total


@PROPERTY
@given(data=st.data(), name=st.sampled_from(ZONES), week=weeks, holiday_list=holidays)
def test_elapsed_matches_a_slow_independent_oracle(data, name, week, holiday_list):
    cal = BusinessCalendar(name, week, holiday_list)
    a = data.draw(instants(cal))
    b = a + data.draw(st.timedeltas(timedelta(0), timedelta(days=20)))
    assert cal.elapsed(a, b) == _oracle_elapsed(cal, week, holiday_list, a, b)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(ZONES), week=weeks, holiday_list=holidays)
def test_block_jumps_agree_with_walking_day_by_day(data, name, week, holiday_list):
    walking = BusinessCalendar(name, week, holiday_list)
    jumping = BusinessCalendar(name, week, holiday_list)
    start = data.draw(instants(walking))
    duration = data.draw(durations_for(walking, weeks=60, base=st.one_of(
        durations, st.integers(0, 400 * DAY_US).map(lambda us: us * US))))
    end = start + data.draw(st.timedeltas(timedelta(0), timedelta(days=400)))
    expected = (walking.add(start, duration), walking.elapsed(start, end),
                walking.next_working(start))
    with mock.patch.object(calendar_module, "_WALK_DAYS", 0):
        got = (jumping.add(start, duration), jumping.elapsed(start, end),
               jumping.next_working(start))
    with mock.patch.object(calendar_module, "_WALK_DAYS", 10_000):
        walked = (walking.add(start, duration), walking.elapsed(start, end))
    assert got == expected
    assert walked == expected[:2]


def test_long_durations_with_holidays_are_exact_across_years():
    hols = [date(y, m, d) for y in range(2024, 2031) for m, d in ((1, 1), (5, 1), (12, 25))]
    cal = office(holidays=hols + [(date(2026, 8, 1), date(2026, 8, 31))])
    start = at(BERLIN, 2024, 2, 29, 13, 7, 11, 5)
    for days in (1, 30, 365, 1000):
        due = cal.add(start, timedelta(days=days))
        assert cal.elapsed(start, due) == timedelta(days=days)
        assert cal.is_working(due - US)
    # 2024-03-01 .. 2025-02-28 has 261 weekdays; 1 May and 25 Dec 2024, 1 Jan 2025 are off
    assert cal.elapsed(at(BERLIN, 2024, 3, 1), at(BERLIN, 2025, 3, 1)) == 258 * 8 * H
    with pytest.raises(ValueError, match="naive"):
        cal.elapsed(datetime(2024, 1, 1), at(BERLIN, 2024, 1, 2))


def test_the_calendar_is_pure():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(calendar_module))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "re", "bisect", "collections", "datetime", "zoneinfo"}
