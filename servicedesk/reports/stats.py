"""Aggregates the two back ends spell differently: percentiles, epoch seconds, days.

**Percentiles** are *continuous* (linear interpolation between the two nearest ranks,
as PostgreSQL's ``percentile_cont`` and most spreadsheets compute them): the median of
1, 2, 3, 4 is 2.5. PostgreSQL computes them with ``percentile_cont`` in one pass.
SQLite has no percentile function: there a window query numbers the filtered values
in order (``ROW_NUMBER``/``COUNT`` over the set) and returns only the (at most two per
percentile) rows around each position, which Python interpolates exactly as
``percentile_cont`` does. Both read only the filtered column; neither fetches the set.
The tests compute every figure on both back ends.
"""

from __future__ import annotations

from fractions import Fraction

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from servicedesk.extensions import db

MEDIAN_P90 = (Fraction(1, 2), Fraction(9, 10))
REPORT_WORK_MEM = "64MB"


def report_settings() -> None:
    """PostgreSQL: settings for the rest of this transaction (a report's).

    - no JIT compilation: its cost estimates put report statements over the JIT
      threshold, and compiling them took a quarter of a second per statement
      (bench/reports.py), more than it won;
    - ``work_mem`` of ``REPORT_WORK_MEM``: the percentiles sort the cohort's values, a
      year of a million tickets is ~460,000 per measure, which the default 4 MB sorts
      on disk (an external merge, a third of the statement's time).
    """
    if db.engine.dialect.name == "postgresql":
        # set_config(..., true): SET LOCAL, both in one round trip
        db.session.execute(text("SELECT set_config('jit', 'off', true), "
                                "set_config('work_mem', :work_mem, true)"),
                           {"work_mem": REPORT_WORK_MEM})


class epoch(FunctionElement):
    """Seconds since 1970 of a (naive UTC) timestamp column, as a number."""

    inherit_cache = True


@compiles(epoch)
def _epoch_pg(element, compiler, **kw):
    return "EXTRACT(EPOCH FROM %s)" % compiler.process(element.clauses, **kw)


@compiles(epoch, "sqlite")
def _epoch_sqlite(element, compiler, **kw):
    return "CAST(strftime('%%s', %s) AS INTEGER)" % compiler.process(element.clauses, **kw)


class day(FunctionElement):
    """The UTC calendar day of a timestamp column: a date on PostgreSQL (a cast, much
    cheaper per row than formatting), 'YYYY-MM-DD' text on SQLite; ``str()`` of either
    is the ISO day."""

    inherit_cache = True


@compiles(day)
def _day_pg(element, compiler, **kw):
    return "CAST(%s AS DATE)" % compiler.process(element.clauses, **kw)


@compiles(day, "sqlite")
def _day_sqlite(element, compiler, **kw):
    return "date(%s)" % compiler.process(element.clauses, **kw)


def aggregate(columns: list, measured: list, where: list, from_=None, ps=MEDIAN_P90):
    """One row of the aggregate ``columns``, and the continuous percentiles ``ps`` of
    each expression in ``measured`` (NULLs left out; None for an empty set).

    PostgreSQL: a single statement (``percentile_cont`` beside the other aggregates, so
    the rows are read once). SQLite: the aggregates, then one window query per
    expression. ``from_``: the FROM clause (a join) when the columns do not imply it.
    """
    postgresql = db.engine.dialect.name == "postgresql"
    extra = [func.percentile_cont(float(p)).within_group(value)
             for value in measured for p in ps] if postgresql else []
    statement = select(*columns, *extra).where(*where)
    if from_ is not None:
        statement = statement.select_from(from_)
    row = list(db.session.execute(statement).one())
    if postgresql:
        found = row[len(columns):]
        figures = [[float(v) if v is not None else None for v in found[i:i + len(ps)]]
                   for i in range(0, len(found), len(ps))]
    else:
        figures = [_windowed(value, where, from_, ps) for value in measured]
    return row[:len(columns)], figures


def _windowed(value, where, from_, ps) -> list[float | None]:
    """SQLite: number the values in order, fetch only the rows around each position and
    interpolate between them as ``percentile_cont`` does."""
    ranked = select(
        value.label("v"),
        (func.row_number().over(order_by=value) - 1).label("i"),
        func.count().over().label("n"),
    ).where(*where, value.isnot(None))
    if from_ is not None:
        ranked = ranked.select_from(from_)
    ranked = ranked.subquery()
    # floor((n - 1) * p) in integer arithmetic: the lower neighbour of each position.
    lows = [(ranked.c.n - 1) * p.numerator // p.denominator for p in ps]
    wanted = or_(*(ranked.c.i == low for low in lows), *(ranked.c.i == low + 1 for low in lows))
    rows = db.session.execute(select(ranked.c.i, ranked.c.n, ranked.c.v).where(wanted)).all()
    if not rows:
        return [None for _p in ps]
    n = rows[0].n
    at = {row.i: float(row.v) for row in rows}
    result = []
    for p in ps:
        position = (n - 1) * p
        low = int(position)
        fraction = float(position - low)
        result.append(at[low] if fraction == 0 else at[low] + fraction * (at[low + 1] - at[low]))
    return result
