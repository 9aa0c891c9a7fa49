"""Business time of SLA clocks that stopped before ``sla_clocks.elapsed_seconds`` existed.

``sla.service.refresh_clocks`` writes the column whenever it recomputes a clock, but it
recomputes open tickets only; clocks of tickets resolved before migration 0018 keep
NULL (and are left out of the report's medians) until this fills them, from the row
alone: business time from ``started_at`` to ``met_at`` on the policy's calendar, minus
``paused_seconds`` — what ``sla.clocks.stopped_seconds`` computes for a fresh clock.
Idempotent: it only reads clocks still NULL.
"""

from __future__ import annotations

from sqlalchemy import select, update

from servicedesk.extensions import db
from servicedesk.sla.models import SlaClock, SlaPolicy
from servicedesk.sla.service import calendar_for

BATCH = 1000


def fill_elapsed(batch: int = BATCH) -> int:
    """Fill ``elapsed_seconds`` of every stopped clock without it; how many were filled."""
    calendars: dict[int, object] = {}
    filled = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(SlaClock.id, SlaClock.policy_id, SlaClock.started_at, SlaClock.met_at,
                   SlaClock.paused_seconds)
            .where(SlaClock.met_at.isnot(None), SlaClock.elapsed_seconds.is_(None),
                   SlaClock.id > last_id)
            .order_by(SlaClock.id).limit(batch)).all()
        if not rows:
            return filled
        for clock_id, policy_id, started, met, paused in rows:
            if policy_id not in calendars:
                policy = db.session.get(SlaPolicy, policy_id)
                calendars[policy_id] = calendar_for(policy.calendar)
            spent = calendars[policy_id].elapsed(started, met).total_seconds() - paused
            db.session.execute(update(SlaClock).where(SlaClock.id == clock_id)
                               .values(elapsed_seconds=max(0, int(spent))))
            filled += 1
        db.session.commit()
        last_id = rows[-1].id
