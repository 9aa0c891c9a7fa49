"""Business-hours calendars: exact SLA arithmetic across weekends, holidays and DST.

An SLA says "respond within 3 business hours"; a clock needs two operations:

* :meth:`BusinessCalendar.add` — the instant at which a business duration, started at
  some instant, is used up (the *due* or *warning* instant);
* :meth:`BusinessCalendar.elapsed` — the business time between two instants (how much
  of the target is spent, paused time, OLA time).

Both are exact to the microsecond and consistent with each other
(``elapsed(s, add(s, d)) == d``), so a clock recomputed from a ticket's history never
drifts from the one computed incrementally.

Conventions (the SLA engine and the docs rely on them):

* **Working time** is given as wall-clock intervals per weekday (0 = Monday ..
  6 = Sunday) in the calendar's time zone. Any pattern is allowed (Mon–Fri, Sun–Thu,
  Sat–Wed, split shifts). An interval is half-open, ``[start, end)``.
* **24:00** is written ``None`` (or the string ``"24:00"``) as an interval's end.
  ``time.max`` is refused rather than guessed at: it would silently lose a
  microsecond a day. A shift past midnight is two intervals: ``22:00–24:00`` on one
  day and ``00:00–06:00`` on the next (``end <= start`` is an error).
* **DST.** Each day's wall-clock intervals are turned into UTC instants with zoneinfo,
  and all arithmetic is on UTC instants, so a day is as long as it really is: a
  00:00–24:00 day is 23 h of business time on the spring-forward day and 25 h on the
  fall-back day. A wall time maps to the *earliest instant whose wall-clock reading is
  at or after it*: a repeated time (fall-back) means its first occurrence (``fold=0``),
  a time that does not exist (spring-forward gap) means the instant the clocks jump.
  The mapping never goes backwards, so intervals keep their order; an interval lying
  wholly inside a gap is empty that day.
* **Holidays** are dates in the calendar's zone; the whole date is non-working (its
  own intervals are dropped; the previous day's 22:00–24:00 part of a night shift
  still counts).
* **Results** are aware datetimes in UTC (``datetime.timezone.utc``). Inputs must be
  aware (any tzinfo); naive datetimes raise :class:`ValueError`, because guessing
  their zone is exactly how SLA clocks go wrong.
* **Zero duration**: ``add(s, timedelta(0))`` returns ``s`` itself (as UTC), even
  outside working time — nothing has to elapse. Use :meth:`next_working` for "the
  first working instant at or after s".
* **End boundary**: when a positive duration is used up exactly at the end of a working
  interval, ``add`` returns that end instant (not the start of the next interval), so
  a due instant is never later than necessary. A positive duration therefore lands
  inside a working interval or at its end — never inside a holiday or off hours.

Speed: per-date UTC intervals and per-block (128-day) prefix sums of business time
are computed lazily and cached on the instance, so long durations jump over blocks by
bisection instead of walking days; build one calendar and reuse it. A calendar that
works 00:00–24:00 every day with no holidays (:meth:`BusinessCalendar.always`, in any
zone) is plain ``timedelta`` arithmetic. The caches only ever hold values derived from
immutable configuration, so sharing an instance between threads is safe.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["BusinessCalendar"]

UTC = timezone.utc
_ONE_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIDNIGHT = (time(0), time(0, fold=1))
_combine = datetime.combine
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Days per prefix-sum block: big enough that a year-long duration crosses only a few
# blocks, small enough that a fresh calendar answers a short question quickly.
_BLOCK = 128
# add()/elapsed() walk up to this many whole days before switching to block jumps:
# typical SLA targets (hours, a few days) never build a block at all.
_WALK_DAYS = 10
# Dates whose midnights are representable on both sides (the 24:00 of a day is the
# next day's 00:00); outside it there is no working time.
_MIN_ORD = date(1, 1, 2).toordinal()
_MAX_ORD = date(9999, 12, 30).toordinal()
# Crude bound on cached dates (about 1,100 years) so a process cannot grow without end.
_CACHE_LIMIT = 400_000

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")

# A day record: (utc_us of its 00:00, utc_us of its 24:00, ((start_us, end_us), ...), total_us)
_Day = tuple[int, int, tuple[tuple[int, int], ...], int]


def _to_us(instant: datetime) -> int:
    """UTC microseconds since 1970 of an aware datetime (exact integer arithmetic)."""
    return (instant - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _parse_clock(value: object, *, end: bool, where: str) -> int:
    """Wall time as microseconds after midnight; ``None``/"24:00" allowed only as an end."""
    if value is None or value == "24:00" or value == "24:00:00":
        if end:
            return _DAY_US
        raise ValueError(f"{where}: 24:00 (None) can only end an interval, not start one")
    if isinstance(value, str):
        match = _TIME_RE.match(value.strip())
        if not match:
            raise ValueError(f"{where}: {value!r} is not a time of day (HH:MM or HH:MM:SS)")
        hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(f"{where}: {value!r} is not a time of day")
        value = time(hours, minutes, seconds)
    if isinstance(value, datetime) or not isinstance(value, time):
        raise ValueError(f"{where}: expected a datetime.time, 'HH:MM' or None, got {value!r}")
    if value.tzinfo is not None:
        raise ValueError(f"{where}: {value} carries a time zone; intervals are wall-clock "
                         "times in the calendar's zone")
    if value == time.max:
        raise ValueError(f"{where}: time.max is ambiguous; write None or '24:00' for the end "
                         "of the day")
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _format_clock(us: int) -> str:
    if us == _DAY_US:
        return "24:00"
    seconds, micro = divmod(us, 1_000_000)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"
    if seconds % 60 or micro:
        text += f":{seconds % 60:02d}" + (f".{micro:06d}" if micro else "")
    return text


def _clock_time(us: int) -> time | None:
    if us == _DAY_US:
        return None
    seconds, micro = divmod(us, 1_000_000)
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)


class BusinessCalendar:
    """A time zone, working intervals per weekday and holidays; see the module docstring.

    :param timezone: an IANA zone name, e.g. ``"Europe/Berlin"``.
    :param week: weekday (0 = Monday .. 6 = Sunday) -> list of ``(start, end)``
        wall-clock intervals; ``start``/``end`` are :class:`datetime.time` or
        ``"HH:MM[:SS]"``; ``end`` may be ``None``/``"24:00"`` for midnight at the end of
        the day. Missing weekdays do not work. Touching intervals are merged.
    :param holidays: dates, or ``(first, last)`` inclusive date ranges.
    :raises ValueError: unknown zone, ``end <= start``, overlapping intervals, weekday
        outside 0..6, no working time at all, a holiday range that ends before it starts.
    """

    __slots__ = ("timezone", "_tz", "_week", "_bounds", "_holiday_starts", "_holiday_ranges",
                 "_always", "_days", "_blocks", "_offsets")

    def __init__(self, timezone: str,
                 week: Mapping[int, Sequence[tuple[time | str, time | str | None]]],
                 holidays: Iterable[date | tuple[date, date]] = ()) -> None:
        self.timezone = timezone
        self._tz = self._zone(timezone)
        self._week = self._validate_week(week)
        # per weekday: (start_us, end_us, start as time with fold 0 and 1, same for end);
        # building each date's instants from these avoids slow datetime.replace calls
        self._bounds = tuple(
            tuple((s, e, *self._folds(s), *self._folds(e)) for s, e in day) for day in self._week)
        self._offsets: dict[timedelta, int] = {}
        self._holiday_ranges = self._validate_holidays(holidays)
        self._holiday_starts = [first for first, _ in self._holiday_ranges]
        self._always = (not self._holiday_ranges
                        and all(day == ((0, _DAY_US),) for day in self._week))
        self._days: dict[int, _Day] = {}
        self._blocks: dict[int, list[int]] = {}

    @classmethod
    def always(cls, timezone: str = "UTC") -> BusinessCalendar:
        """The 24×7 calendar: every instant is working time, so ``add`` is ``s + d``.

        Real elapsed time does not depend on the zone, so any zone gives the same
        answers; the zone is kept only for display.
        """
        return cls(timezone, {day: [(time(0), None)] for day in range(7)})

    @staticmethod
    def _folds(us: int) -> tuple[time | None, time | None]:
        if us == _DAY_US:
            return None, None
        t = _clock_time(us)
        return t, t.replace(fold=1)

    # -- validation ---------------------------------------------------------------------

    @staticmethod
    def _zone(name: str) -> ZoneInfo:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"unknown time zone {name!r}: give an IANA name such as "
                             "'Europe/Berlin'")
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown time zone {name!r}: give an IANA name such as "
                             "'Europe/Berlin'") from exc

    @staticmethod
    def _validate_week(week: Mapping[int, Sequence]) -> tuple[tuple[tuple[int, int], ...], ...]:
        if not isinstance(week, Mapping):
            raise ValueError("week must map weekday numbers (0 = Monday .. 6 = Sunday) to "
                             "lists of (start, end) intervals")
        days: list[tuple[tuple[int, int], ...]] = [()] * 7
        for weekday, intervals in week.items():
            if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
                raise ValueError(f"weekday {weekday!r} is outside 0..6 (0 = Monday .. "
                                 "6 = Sunday)")
            name = WEEKDAYS[weekday]
            if isinstance(intervals, (str, bytes)) or not isinstance(intervals, Iterable):
                raise ValueError(f"{name}: expected a list of (start, end) intervals")
            parsed: list[tuple[int, int]] = []
            for interval in intervals:
                if isinstance(interval, (str, bytes)) or not isinstance(interval, Sequence) \
                        or len(interval) != 2:
                    raise ValueError(f"{name}: {interval!r} is not a (start, end) pair")
                where = f"{name} {interval!r}"
                start = _parse_clock(interval[0], end=False, where=where)
                end = _parse_clock(interval[1], end=True, where=where)
                if end <= start:
                    raise ValueError(
                        f"{name}: interval {_format_clock(start)}–{_format_clock(end)} ends "
                        "at or before it starts; a shift past midnight is two intervals "
                        "(e.g. 22:00–24:00 and 00:00–06:00 on the next day), and 24:00 is "
                        "written None or '24:00'")
                parsed.append((start, end))
            parsed.sort()
            merged: list[tuple[int, int]] = []
            for start, end in parsed:
                if merged and start < merged[-1][1]:
                    prev = merged[-1]
                    raise ValueError(
                        f"{name}: intervals {_format_clock(prev[0])}–{_format_clock(prev[1])} "
                        f"and {_format_clock(start)}–{_format_clock(end)} overlap")
                if merged and start == merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
                else:
                    merged.append((start, end))
            days[weekday] = tuple(merged)
        if not any(days):
            raise ValueError("the calendar has no working time at all: give at least one "
                             "working interval on some weekday")
        return tuple(days)

    @staticmethod
    def _validate_holidays(holidays: Iterable) -> list[tuple[int, int]]:
        if isinstance(holidays, (str, bytes)) or not isinstance(holidays, Iterable):
            raise ValueError("holidays must be a list of dates or (first, last) date ranges")
        ranges: list[tuple[int, int]] = []
        for item in holidays:
            if isinstance(item, date) and not isinstance(item, datetime):
                first = last = item
            elif (isinstance(item, Sequence) and not isinstance(item, (str, bytes))
                  and len(item) == 2
                  and all(isinstance(d, date) and not isinstance(d, datetime) for d in item)):
                first, last = item
                if last < first:
                    raise ValueError(f"holiday range {first}..{last} ends before it starts")
            else:
                raise ValueError(f"holiday {item!r} is neither a date nor a (first, last) "
                                 "pair of dates")
            ranges.append((first.toordinal(), last.toordinal()))
        ranges.sort()
        merged: list[tuple[int, int]] = []
        for first, last in ranges:
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
            else:
                merged.append((first, last))
        return merged

    # -- read-only views (for the admin API, display and tests) -------------------------

    @property
    def week(self) -> dict[int, list[tuple[time, time | None]]]:
        """Normalised working intervals per weekday (merged, sorted; ``None`` = 24:00)."""
        return {weekday: [(_clock_time(s), _clock_time(e)) for s, e in day]
                for weekday, day in enumerate(self._week) if day}

    @property
    def holidays(self) -> list[tuple[date, date]]:
        """Holidays as merged, sorted, inclusive ``(first, last)`` date ranges."""
        return [(date.fromordinal(a), date.fromordinal(b)) for a, b in self._holiday_ranges]

    @property
    def is_always(self) -> bool:
        """True when every instant is working time (the fast path)."""
        return self._always

    def __repr__(self) -> str:
        days = "; ".join(
            f"{WEEKDAYS[w][:3]} " + ",".join(f"{_format_clock(s)}–{_format_clock(e)}"
                                            for s, e in day)
            for w, day in enumerate(self._week) if day)
        return (f"BusinessCalendar({self.timezone!r}, {days}, "
                f"{len(self._holiday_ranges)} holiday range(s))")

    def is_holiday(self, day: date) -> bool:
        """Whether ``day`` (a date in the calendar's zone) is a holiday."""
        return self._is_holiday(day.toordinal())

    def _is_holiday(self, ordinal: int) -> bool:
        i = bisect_right(self._holiday_starts, ordinal) - 1
        return i >= 0 and ordinal <= self._holiday_ranges[i][1]

    # -- the two operations -------------------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant (UTC) at which ``duration`` of business time after ``start`` is used up.

        Counting begins at ``start`` if it is working time, otherwise at the next working
        interval. A zero duration returns ``start``; a duration used up exactly at the
        end of an interval returns that end. Negative durations raise ValueError (a
        clock never runs backwards).
        """
        x = self._instant(start, "start")
        remaining = self._duration(duration)
        if remaining == 0:
            return _from_us(x)
        if self._always:
            return _from_us(x + remaining)
        n = self._day_of(x, start)
        _, _, intervals, _ = self._day(n)
        for a, b in intervals:  # the rest of the start's own day
            if b <= x:
                continue
            if a < x:
                a = x
            if remaining <= b - a:
                return _from_us(a + remaining)
            remaining -= b - a
        n += 1
        for _ in range(_WALK_DAYS):  # short targets: walk a few whole days
            day = self._day(n)
            if remaining <= day[3]:
                return _from_us(self._locate(day[2], remaining))
            remaining -= day[3]
            n += 1
        # long targets: jump whole blocks by their totals, then bisect inside one
        k, i = divmod(n, _BLOCK)
        cum = self._block(k)
        target = cum[i] + remaining
        while target > cum[-1]:
            target -= cum[-1]
            k += 1
            cum = self._block(k)
        i = bisect_left(cum, target) - 1
        return _from_us(self._locate(self._day(k * _BLOCK + i)[2], target - cum[i]))

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time in ``[start, end)``; zero when ``end <= start``."""
        x = self._instant(start, "start")
        y = self._instant(end, "end")
        if y <= x:
            return timedelta(0)
        if self._always:
            return timedelta(microseconds=y - x)
        n = self._day_of(x, start)
        m = self._day_of(y, end)
        if m - n <= _WALK_DAYS:
            total = sum(self._day(d)[3] for d in range(n, m))
            return timedelta(microseconds=total + self._within(self._day(m)[2], y)
                             - self._within(self._day(n)[2], x))
        kx, ix = divmod(n, _BLOCK)
        ky, iy = divmod(m, _BLOCK)
        total = sum(self._block(k)[-1] for k in range(kx, ky))
        total += self._block(ky)[iy] + self._within(self._day(m)[2], y)
        total -= self._block(kx)[ix] + self._within(self._day(n)[2], x)
        return timedelta(microseconds=total)

    def is_working(self, instant: datetime) -> bool:
        """Whether ``instant`` lies inside a working interval (start included, end not)."""
        x = self._instant(instant, "instant")
        if self._always:
            return True
        return any(a <= x < b for a, b in self._day(self._day_of(x, instant))[2])

    def next_working(self, instant: datetime) -> datetime:
        """The first working instant at or after ``instant`` (UTC); itself if working.

        For deferring things that should only happen in working hours (a warning e-mail
        to a person), where ``add(s, 0)`` deliberately returns ``s`` unchanged.
        """
        x = self._instant(instant, "instant")
        if self._always:
            return _from_us(x)
        n = self._day_of(x, instant)
        for a, b in self._day(n)[2]:
            if x < b:
                return _from_us(max(a, x))
        n += 1
        for _ in range(_WALK_DAYS):
            intervals = self._day(n)[2]
            if intervals:
                return _from_us(intervals[0][0])
            n += 1
        # a long holiday: find the first date with work through the block sums
        k, i = divmod(n, _BLOCK)
        cum = self._block(k)
        while cum[-1] == cum[i]:
            k, i = k + 1, 0
            cum = self._block(k)
        i = bisect_right(cum, cum[i]) - 1
        return _from_us(self._day(k * _BLOCK + i)[2][0][0])

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _instant(value: datetime, name: str) -> int:
        if not isinstance(value, datetime):
            raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} {value.isoformat()} is naive; give an aware datetime "
                             "(e.g. in UTC)")
        return _to_us(value)

    @staticmethod
    def _duration(value: timedelta) -> int:
        if not isinstance(value, timedelta):
            raise ValueError(f"duration must be a timedelta, got {type(value).__name__}")
        if value < timedelta(0):
            raise ValueError(f"duration {value} is negative")
        return value // _ONE_US

    @staticmethod
    def _locate(intervals: tuple[tuple[int, int], ...], remaining: int) -> int:
        """The instant at which ``0 < remaining <= day total`` is used up within a day."""
        for a, b in intervals:
            if remaining <= b - a:
                return a + remaining
            remaining -= b - a
        raise AssertionError("remaining business time exceeds the day's total")

    @staticmethod
    def _within(intervals: tuple[tuple[int, int], ...], x: int) -> int:
        """Business time of a day's intervals before instant ``x``."""
        total = 0
        for a, b in intervals:
            if x <= a:
                break
            total += (b if b < x else x) - a
        return total

    def _day_of(self, x: int, instant: datetime) -> int:
        """Ordinal of the calendar date whose ``[00:00, 24:00)`` span holds instant ``x``.

        Usually the local date; differs only around a fall-back at midnight, where the
        repeated hour belongs to the next date's span under the earliest-instant rule.
        """
        try:
            n = instant.astimezone(self._tz).toordinal()
        except OverflowError:
            n = _MAX_ORD + 1 if x > 0 else _MIN_ORD - 1
        day = self._day(n)
        while x < day[0] and n >= _MIN_ORD:
            n -= 1
            day = self._day(n)
        while x >= day[1] and n <= _MAX_ORD:
            n += 1
            day = self._day(n)
        return n

    def _wall(self, day: date, local_us: int, fold0: time, fold1: time) -> int:
        """UTC microseconds of the earliest instant whose wall clock reads the given time
        of ``day`` or later (``local_us``: that wall time as if it were UTC)."""
        tz = self._tz
        before = tz.utcoffset(_combine(day, fold0))   # offset before any transition
        after = tz.utcoffset(_combine(day, fold1))    # offset after it
        offsets = self._offsets
        before_us = offsets.get(before)
        if before_us is None:
            before_us = offsets[before] = before // _ONE_US
        if before >= after:  # unique, or repeated (fold=0 is the first occurrence)
            return local_us - before_us
        # A gap (clocks jump forward over this time): the answer is the jump itself,
        # which lies in (local - after, local - before]. tz data is whole seconds, but
        # search microseconds to assume nothing.
        lo = local_us - after // _ONE_US
        hi = local_us - before_us
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _from_us(mid).astimezone(tz).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        return hi

    def _day(self, n: int) -> _Day:
        day = self._days.get(n)
        if day is not None:
            return day
        if not _MIN_ORD <= n <= _MAX_ORD:
            # Beyond datetime's range: no working time, spans that contain nothing.
            edge = -(2 ** 62) if n < _MIN_ORD else 2 ** 62
            return (edge, edge, (), 0)
        d = date.fromordinal(n)
        local = (n - _EPOCH_ORDINAL) * _DAY_US
        midnight = self._wall(d, local, *_MIDNIGHT)
        following = self._days.get(n + 1)
        next_midnight = (following[0] if following
                         else self._wall(date.fromordinal(n + 1), local + _DAY_US, *_MIDNIGHT))
        intervals: tuple[tuple[int, int], ...] = ()
        total = 0
        if not self._is_holiday(n):
            found = []
            for s, e, s0, s1, e0, e1 in self._bounds[d.weekday()]:
                a = midnight if s == 0 else self._wall(d, local + s, s0, s1)
                b = next_midnight if e == _DAY_US else self._wall(d, local + e, e0, e1)
                if b > a:  # an interval wholly inside a DST gap is empty that day
                    found.append((a, b))
                    total += b - a
            intervals = tuple(found)
        if len(self._days) > _CACHE_LIMIT:
            self._days.clear()
        day = (midnight, next_midnight, intervals, total)
        self._days[n] = day
        return day

    def _block(self, k: int) -> list[int]:
        """Prefix sums of business time over the ``_BLOCK`` dates of block ``k``."""
        cum = self._blocks.get(k)
        if cum is not None:
            return cum
        if k * _BLOCK > _MAX_ORD:
            raise OverflowError("business time runs beyond the year 9999")
        total = 0
        cum = [0]
        # build backwards so each date finds its next midnight already cached
        totals = [self._day(n)[3] for n in range(k * _BLOCK + _BLOCK - 1, k * _BLOCK - 1, -1)]
        for t in reversed(totals):
            total += t
            cum.append(total)
        if len(self._blocks) > _CACHE_LIMIT // _BLOCK:
            self._blocks.clear()
        self._blocks[k] = cum
        return cum
