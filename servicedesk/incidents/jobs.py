"""Background work of incident management. Jobs take ids (or nothing), never objects."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from servicedesk.extensions import db
from servicedesk.incidents.models import Incident
from servicedesk.incidents.service import close_if_resolved_before
from servicedesk.types import utcnow

BATCH = 500


def auto_close_resolved() -> int:
    """Close incidents resolved more than SERVICEDESK_AUTOCLOSE_DAYS ago; returns how many.

    Idempotent: each incident is re-checked under its own transaction, so concurrent
    runs (two schedulers, a retried job) close each incident once.
    """
    cutoff = utcnow() - timedelta(days=current_app.config["SERVICEDESK_AUTOCLOSE_DAYS"])
    closed = 0
    while True:
        numbers = list(db.session.scalars(
            select(Incident.number)
            .where(Incident.status == "resolved", Incident.resolved_at <= cutoff)
            .order_by(Incident.resolved_at)
            .limit(BATCH)
        ))
        db.session.rollback()
        batch = sum(close_if_resolved_before(number, cutoff) for number in numbers)
        closed += batch
        if len(numbers) < BATCH or batch == 0:
            return closed
