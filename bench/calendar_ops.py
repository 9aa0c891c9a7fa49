"""Calendar arithmetic benchmark: business-hours add() and elapsed() per second.

Run it (from the repository root, with the venv)::

    .venv/bin/python bench/calendar_ops.py                 # 20,000 ops per figure
    .venv/bin/python bench/calendar_ops.py --ops 5000 --time-limit 2

For three calendars, each with 10 holidays a year (one of them a two-day range) for
2024–2035,

* 24×7 (the fast path: plain timedelta arithmetic),
* Mon–Fri 09:00–17:00 in Europe/Berlin,
* a split shift Sun–Thu 08:00–12:00 + 13:00–17:00 in Asia/Jerusalem (DST zone),

it times ``add(start, d)`` where ``d`` is one calendar year's worth of that calendar's
business time (so the due instant lands about a year later, crossing ~10 holidays and
two DST changes), from random starts in 2025; ``add`` of a typical 3-business-hour
target; and ``elapsed(start, start + 365 days)``. Figures are for a warm calendar (one
built once and reused, as the SLA engine should); the cold cost — a fresh calendar
answering its first year-long question — is printed too.

Each figure stops at ``--ops`` operations or ``--time-limit`` seconds, whichever comes
first, so the whole run takes at most a few tens of seconds. The target from issue 3 is
well over 10,000 year-long add() operations per second. This prints figures; it is
not a test (tests/test_sla_calendar.py checks correctness).
"""

from __future__ import annotations

import argparse
import random
import sys
import time as clock
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servicedesk.sla.calendar import BusinessCalendar  # noqa: E402

UTC = timezone.utc
TARGET = 10_000


def holidays() -> list:
    """10 holidays a year: 8 single dates and one two-day range."""
    days = []
    for year in range(2024, 2036):
        days += [date(year, m, d) for m, d in ((1, 1), (1, 6), (5, 1), (6, 15), (8, 15),
                                               (10, 3), (11, 1), (12, 31))]
        days.append((date(year, 12, 25), date(year, 12, 26)))
    return days


def calendars() -> dict[str, BusinessCalendar]:
    hols = holidays()
    full_day = {d: [(time(0), None)] for d in range(7)}
    return {
        "24x7 (fast path)": BusinessCalendar.always("UTC"),
        "24x7 Europe/Berlin + holidays": BusinessCalendar("Europe/Berlin", full_day, hols),
        "Mon-Fri 9-17 Europe/Berlin": BusinessCalendar(
            "Europe/Berlin", {d: [(time(9), time(17))] for d in range(5)}, hols),
        "split Sun-Thu Asia/Jerusalem": BusinessCalendar(
            "Asia/Jerusalem", {d: [(time(8), time(12)), (time(13), time(17))]
                               for d in (6, 0, 1, 2, 3)}, hols),
    }


def rate(fn, args: list, ops: int, limit: float) -> tuple[float, int]:
    """Operations per second of ``fn(*a)`` over ``args`` (cycled), bounded in count and time."""
    done, start = 0, clock.perf_counter()
    deadline = start + limit
    while done < ops:
        chunk = args[: min(len(args), ops - done)]
        for a in chunk:
            fn(*a)
        done += len(chunk)
        if clock.perf_counter() > deadline:
            break
    return done / (clock.perf_counter() - start), done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=20_000, help="operations per figure")
    parser.add_argument("--time-limit", type=float, default=5.0,
                        help="seconds per figure at most")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    rng = random.Random(options.seed)
    year_start = datetime(2025, 1, 1, tzinfo=UTC)
    starts = [year_start + timedelta(microseconds=rng.randrange(365 * 86_400_000_000))
              for _ in range(1000)]
    print(f"Python {sys.version.split()[0]}; {options.ops} ops or {options.time_limit:g} s "
          "per figure; warm calendars; 10 holidays a year\n")
    header = f"{'calendar':32s} {'add 1 year/s':>13s} {'add 3 h/s':>11s} {'elapsed 1y/s':>13s} " \
             f"{'cold ms':>8s}  year of business time"
    print(header)
    print("-" * len(header))
    failed = []
    for name, cal in calendars().items():
        fresh = BusinessCalendar(cal.timezone, cal.week, cal.holidays) if not cal.is_always \
            else cal
        t0 = clock.perf_counter()
        year = fresh.elapsed(year_start, year_start + timedelta(days=365))
        fresh.add(starts[0], year)
        cold_ms = (clock.perf_counter() - t0) * 1000
        for s in starts:  # warm the caches, and check exactness while at it
            due = cal.add(s, year)
            assert cal.elapsed(s, due) == year, (name, s)
        add_year, _ = rate(cal.add, [(s, year) for s in starts], options.ops, options.time_limit)
        add_short, _ = rate(cal.add, [(s, timedelta(hours=3)) for s in starts], options.ops,
                            options.time_limit)
        span = [(s, s + timedelta(days=365)) for s in starts]
        elapsed_year, _ = rate(cal.elapsed, span, options.ops, options.time_limit)
        print(f"{name:32s} {add_year:13,.0f} {add_short:11,.0f} {elapsed_year:13,.0f} "
              f"{cold_ms:8.1f}  {year}")
        if add_year < TARGET:
            failed.append(name)
    print(f"\ntarget: > {TARGET:,} year-long add()/s — "
          + ("met by every calendar" if not failed else f"MISSED by {', '.join(failed)}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
