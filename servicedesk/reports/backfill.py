"""Business time of SLA clocks that stopped before ``sla_clocks.elapsed_seconds`` existed.

``sla.service.refresh_clocks`` writes the column whenever it recomputes a clock, but it
recomputes open tickets only; clocks of tickets resolved before migration 0018 keep
NULL (and are left out of the report's medians) until this fills them, from the row
alone: business time from ``started_at`` to ``met_at`` on the policy's calendar, minus
``paused_seconds`` — what ``sla.clocks.stopped_seconds`` computes for a fresh clock.
It writes the ticket's copy of it too (``tickets.sla_<metric>_business_seconds``, what
the reports read; migration 0019 copied the rest of each stopped clock's outcome).
Idempotent: it only reads clocks still NULL.
"""

from __future__ import annotations

from sqlalchemy import select, update

from servicedesk.extensions import db
from servicedesk.sla.models import SlaClock, SlaPolicy
from servicedesk.sla.service import calendar_for
from servicedesk.tickets.models import Ticket

BATCH = 1000


def fill_elapsed(batch: int = BATCH) -> int:
    """Fill ``elapsed_seconds`` of every stopped clock without it; how many were filled."""
    calendars: dict[int, object] = {}
    filled = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(SlaClock.id, SlaClock.ticket_id, SlaClock.metric, SlaClock.policy_id,
                   SlaClock.started_at, SlaClock.met_at, SlaClock.paused_seconds)
            .where(SlaClock.met_at.isnot(None), SlaClock.elapsed_seconds.is_(None),
                   SlaClock.id > last_id)
            .order_by(SlaClock.id).limit(batch)).all()
        if not rows:
            return filled
        tickets = Ticket.__table__
        for clock_id, ticket_id, metric, policy_id, started, met, paused in rows:
            if policy_id not in calendars:
                policy = db.session.get(SlaPolicy, policy_id)
                calendars[policy_id] = calendar_for(policy.calendar)
            spent = calendars[policy_id].elapsed(started, met).total_seconds() - paused
            seconds = max(0, int(spent))
            db.session.execute(update(SlaClock).where(SlaClock.id == clock_id)
                               .values(elapsed_seconds=seconds))
            # A plain UPDATE (no version bump); updated_at set to itself, as bookkeeping.
            db.session.execute(update(tickets).where(tickets.c.id == ticket_id).values(
                {f"sla_{metric}_business_seconds": seconds,
                 "updated_at": tickets.c.updated_at}))
            filled += 1
        db.session.commit()
        last_id = rows[-1].id
