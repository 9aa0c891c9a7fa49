"""Service-desk KPIs over every ticket kind, aggregated in the database.

What each figure counts (``Filters``: a period of whole UTC days plus column filters,
always narrowed to the tickets the actor may see):

- **opened** / **resolved** / **closed**: tickets whose ``created_at`` /
  ``resolved_at`` / ``closed_at`` falls in the period (a reopened ticket has no
  ``resolved_at`` until it is resolved again).
- **backlog**: tickets open *now* that were created before the period's end; their age
  (now − created) as average, median and p90 in hours, the oldest, and buckets.
- Everything else is measured over the **resolved cohort** — the tickets resolved in
  the period — so all of it describes the same tickets:

  - **first response / resolution time**: business seconds the ticket's SLA clock ran
    (``sla_clocks.elapsed_seconds``: on the policy's calendar, pauses excluded; read
    from its copy on the ticket, ``tickets.sla_<metric>_business_seconds``); median
    and p90 in hours; tickets without an SLA policy are not measured;
  - **SLA compliance**: stopped clocks that did not breach ÷ stopped clocks, per metric
    (``tickets.sla_<metric>_breached``: NULL until the clock stopped), and tickets with
    no breached clock ÷ tickets with stopped clocks (``overall``);
  - **reopen rate**: tickets with ``reopen_count > 0`` ÷ resolved;
  - **first-contact resolution**: resolved by the first line (``support_line`` 1 or
    none) without any escalation ÷ resolved;
  - **escalation rate per line** L: tickets escalated out of L (audit entries
    ``escalated`` of ``support_line`` from L) ÷ tickets that reached L (their final
    line is L or above);
  - **CSAT**: ``servicedesk.csat.service.csat_stats`` over the surveys of the
    period's resolutions of the filtered tickets.

- **deflection rate** (the knowledge base's definition, ``servicedesk.kb.analytics``):
  deflections ÷ (deflections + tickets raised on the portal), in the period. A
  deflection has no ticket, so only the period and the ``category`` / ``service``
  filters (the article's) apply to it.

Rates are fractions (0–1, four decimals), None when nothing was counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from types import SimpleNamespace

from sqlalchemy import and_, case, func, literal, or_, select, true

from servicedesk.csat.service import csat_stats
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.kb.models import Article, Deflection
from servicedesk.reports.filters import Filters, require_reader
from servicedesk.reports.stats import aggregate, day, epoch, report_settings
from servicedesk.sla.models import METRICS
from servicedesk.tickets.models import AuditEntry, Ticket
from servicedesk.types import utcnow

LINES = (1, 2, 3)
HOUR = 3600
# (label, lower bound in hours, upper bound in hours or None)
AGE_BUCKETS = (("<1d", 0, 24), ("1-3d", 24, 72), ("3-7d", 72, 168), ("7-30d", 168, 720),
               (">=30d", 720, None))
DURATION_BUCKETS = (("<1h", 0, 1), ("1-4h", 1, 4), ("4-8h", 4, 8), ("8-24h", 8, 24),
                    ("24-72h", 24, 72), (">=72h", 72, None))
# Up to this many days the volume series is per day, beyond it per ISO week.
DAILY_UP_TO = 62


def rate(part, whole) -> float | None:
    return round(part / whole, 4) if whole else None


def _hours(seconds: float | None) -> float | None:
    return round(seconds / HOUR, 2) if seconds is not None else None


def _count(*where) -> int:
    return db.session.scalar(select(func.count()).select_from(Ticket).where(*where))


def kpis(actor: User, filters: Filters, now: datetime | None = None) -> dict:
    """Every KPI of the report for ``filters`` as ``actor`` may see them."""
    require_reader(actor)
    report_settings()
    now = now or utcnow()
    base = filters.clauses(actor)
    cohort = [*base, filters.within(Ticket.resolved_at)]
    figures = _cohort(cohort)
    # CSAT of the filtered tickets; unfiltered for an admin (no list of every ticket id).
    unfiltered = not filters.values and actor.role == "admin"
    return {
        "period": {"from": filters.first_day.isoformat(), "to": filters.last_day.isoformat()},
        "filters": dict(filters.values),
        "volume": {
            "opened": _count(*base, filters.within(Ticket.created_at)),
            "resolved": figures["resolved"],
            "closed": _count(*base, filters.within(Ticket.closed_at)),
        },
        "backlog": backlog(base, filters, now),
        "first_response": figures["response"],
        "resolution": figures["resolution"],
        "sla_compliance": figures["compliance"],
        "reopen_rate": figures["reopen_rate"],
        "first_contact_resolution_rate": figures["first_contact_resolution_rate"],
        "escalation_rate": figures["escalation_rate"],
        "csat": csat_stats(filters.start, filters.end,
                           tickets=None if unfiltered else select(Ticket.id).where(*base)),
        "deflection": deflection(actor, filters),
    }


def _sum(term):
    return func.coalesce(func.sum(case((term, 1), else_=0)), 0)


def _outcomes() -> dict:
    """Per metric, the cohort ticket's stopped clock as the report reads it, from the
    ticket row (``refresh_clocks`` copies it there, migration 0019): ``breached`` (NULL
    while the clock runs or without one) and ``seconds`` (business seconds it ran)."""
    return {metric: SimpleNamespace(
        breached=getattr(Ticket, f"sla_{metric}_breached"),
        seconds=getattr(Ticket, f"sla_{metric}_business_seconds")) for metric in METRICS}


def _cohort(cohort) -> dict:
    """Everything measured over the resolved cohort: one pass over its tickets (their
    clocks' outcomes included; percentiles too on PostgreSQL), one over its escalations."""
    line = func.coalesce(Ticket.support_line, 1)
    columns = [
        func.count(),
        _sum(Ticket.reopen_count > 0),
        _sum(and_(line == 1, Ticket.escalation_count == 0)),
        *[_sum(line >= level) for level in LINES],
    ]
    clocks = _outcomes()
    for clock in clocks.values():
        elapsed = clock.seconds
        columns += [func.count(clock.breached), _sum(clock.breached.is_(False)),
                    func.count(elapsed), func.avg(elapsed)]
        columns += [_sum(elapsed >= low * HOUR if high is None else
                         and_(elapsed >= low * HOUR, elapsed < high * HOUR))
                    for _label, low, high in DURATION_BUCKETS]
    stopped = or_(*(c.breached.isnot(None) for c in clocks.values()))
    breached = or_(*(c.breached.is_(True) for c in clocks.values()))
    columns += [_sum(stopped), _sum(and_(stopped, ~breached))]
    row, figures = aggregate(columns, [clocks[m].seconds for m in METRICS], cohort)
    resolved, reopened, first_contact, *reached = [int(v) for v in row[:3 + len(LINES)]]
    row = row[3 + len(LINES):]
    result = {"resolved": resolved, "reopen_rate": rate(reopened, resolved),
              "first_contact_resolution_rate": rate(first_contact, resolved),
              "compliance": {}}
    for metric, (median, p90) in zip(METRICS, figures):
        total, met, measured, average, *counts = row[:4 + len(DURATION_BUCKETS)]
        row = row[4 + len(DURATION_BUCKETS):]
        result[metric] = {
            "measured": measured,
            "median_hours": _hours(median),
            "p90_hours": _hours(p90),
            "average_hours": _hours(float(average)) if average is not None else None,
            "distribution": [{"bucket": label, "tickets": int(n)}
                             for (label, _low, _high), n in zip(DURATION_BUCKETS, counts)],
        }
        result["compliance"][metric] = {"measured": total, "met": int(met),
                                        "rate": rate(int(met), total)}
    tickets, met_tickets = int(row[0]), int(row[1])
    result["compliance"]["overall"] = {"measured": tickets, "met": met_tickets,
                                       "rate": rate(met_tickets, tickets)}
    result["escalation_rate"] = _escalations(cohort, dict(zip(LINES, reached)))
    return result


def backlog(base, filters: Filters, now: datetime) -> dict:
    """Tickets open now among those created before the period's end, and their age."""
    # "== true()": the form the partial index ix_tickets_open_queue is matched by.
    where = [*base, Ticket.is_open == true(), Ticket.created_at < filters.end]
    buckets = []
    for label, low, high in AGE_BUCKETS:
        term = Ticket.created_at <= now - timedelta(hours=low)
        if high is not None:
            term = and_(term, Ticket.created_at > now - timedelta(hours=high))
        buckets.append(func.coalesce(func.sum(case((term, 1), else_=0)), 0))
    # Age = now - created: its median is now minus the median creation instant, its p90
    # now minus the 10th percentile (interpolation is linear, so this is exact).
    row, [(median_created, p10_created)] = aggregate(
        [func.count(), func.min(Ticket.created_at), func.avg(epoch(Ticket.created_at)),
         *buckets], [epoch(Ticket.created_at)], where, from_=Ticket.__table__,
        ps=(Fraction(1, 2), Fraction(1, 10)))
    count, oldest, avg_created, *counts = row
    stamp = now.timestamp()
    if isinstance(oldest, str):  # SQLite's MIN over the stored text
        oldest = datetime.fromisoformat(oldest)
    return {
        "open": count,
        "average_age_hours": _hours(stamp - float(avg_created)) if count else None,
        "median_age_hours": _hours(stamp - median_created) if count else None,
        "p90_age_hours": _hours(stamp - p10_created) if count else None,
        "oldest_created_at": _iso(oldest),
        "age_buckets": [{"bucket": label, "open": int(n)}
                        for (label, _low, _high), n in zip(AGE_BUCKETS, counts)],
    }


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _escalations(cohort, reached: dict) -> list[dict]:
    """Per line L: cohort tickets escalated out of L ÷ cohort tickets that reached L."""
    source = func.coalesce(AuditEntry.old_value, literal("1"))
    escalated = {int(k): n for k, n in db.session.execute(
        select(source, func.count(func.distinct(AuditEntry.ticket_id)))
        .where(AuditEntry.action == "escalated", AuditEntry.field == "support_line",
               AuditEntry.ticket_id == Ticket.id, *cohort)
        .group_by(source)).all() if str(k).isdigit()}
    return [{"line": level, "reached": reached[level], "escalated": escalated.get(level, 0),
             "rate": rate(escalated.get(level, 0), reached[level])} for level in LINES]


def deflection(actor: User, filters: Filters) -> dict:
    """Deflections ÷ (deflections + portal tickets) in the period (see the module doc)."""
    asked = [Deflection.at >= filters.start, Deflection.at < filters.end]
    portal = [*Filters(filters.start, filters.end, {
        k: v for k, v in filters.values.items() if k in ("category", "service")}).clauses(actor),
        filters.within(Ticket.created_at), Ticket.channel == "web"]
    query = select(func.count(Deflection.id)).where(*asked)
    if "category" in filters.values or "service" in filters.values:
        query = query.join(Article, Article.id == Deflection.article_id)
        if "category" in filters.values:
            query = query.where(Article.category_id == filters.values["category"])
        if "service" in filters.values:
            query = query.where(Article.service_id == filters.values["service"])
    deflections = db.session.scalar(query)
    tickets = _count(*portal)
    return {"deflections": deflections, "portal_tickets": tickets,
            "rate": rate(deflections, deflections + tickets)}


def volume_series(actor: User, filters: Filters) -> list[dict]:
    """Opened and resolved per day (per ISO week, Monday first, beyond DAILY_UP_TO days)."""
    require_reader(actor)
    base = filters.clauses(actor)
    counts: dict[str, dict] = {}
    for key, column in (("opened", Ticket.created_at), ("resolved", Ticket.resolved_at)):
        key_day = day(column)
        for when, n in db.session.execute(
                select(key_day, func.count()).select_from(Ticket)
                .where(*base, filters.within(column)).group_by(key_day)).all():
            counts.setdefault(str(when), {"opened": 0, "resolved": 0})[key] = n
    weekly = (filters.end - filters.start).days > DAILY_UP_TO
    series: dict = {}
    first = filters.first_day
    for offset in range((filters.end - filters.start).days):
        current = first + timedelta(days=offset)
        slot = current - timedelta(days=current.weekday()) if weekly else current
        row = series.setdefault(slot, {"start": slot.isoformat(), "opened": 0, "resolved": 0})
        found = counts.get(current.isoformat())
        if found:
            row["opened"] += found["opened"]
            row["resolved"] += found["resolved"]
    return list(series.values())

