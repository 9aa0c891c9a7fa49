"""Delivering outbox rows: claim, send through the row's backend, record the outcome.

A row is claimed with one conditional UPDATE that counts the attempt and moves
``next_attempt_at`` (and ``claimed_until``) a lease ahead; the claim commits before
anything is sent, so no transaction (nor SQLite's write lock) is held while talking
to a mail server. Two workers cannot both claim a row: on PostgreSQL the candidate is
picked with ``FOR UPDATE SKIP LOCKED`` and the UPDATE re-checks it is still due; on
SQLite writers are serialised anyway. A worker killed mid-send leaves the row pending
with its lease running out, after which the row is due again (the attempt counted).
The outcome is written only if the row still carries our attempt (``attempts`` is the
fencing token), so a worker that overran its lease cannot overwrite a newer claim.

Backends come from plugins (``servicedesk_notifiers``). ``PermanentFailure`` fails a
row at once; any other exception retries it after 1, 2, 4... minutes (capped), and
after ``SERVICEDESK_NOTIFY_MAX_ATTEMPTS`` attempts the row is ``failed`` with its last
error, for an admin to look at and retry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from servicedesk.extensions import db, read_only_transaction
from servicedesk.notify.models import STATUS_SQL, Notification
from servicedesk.notify.service import PermanentFailure, to_message
from servicedesk.plugins import call_hook
from servicedesk.types import utcnow

log = logging.getLogger(__name__)
MAX_ERROR = 2000


def backends() -> dict[str, object]:
    """Every notifier the plugins provide, by name (the first one of a name wins)."""
    found: dict[str, object] = {}
    for provided in call_hook("servicedesk_notifiers"):
        for backend in provided or ():
            name = getattr(backend, "name", None)
            if isinstance(name, str) and name not in found and callable(
                    getattr(backend, "send", None)):
                found[name] = backend
    return found


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed attempt: 1, 2, 4, 8... minutes, capped."""
    cap = current_app.config["SERVICEDESK_NOTIFY_MAX_BACKOFF_MINUTES"]
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), cap))


@dataclass
class Claim:
    id: int
    attempt: int


_PENDING = STATUS_SQL["pending"]  # a literal: the partial index ix_notifications_due


def _due(now: datetime):
    return (Notification.status == _PENDING) & (Notification.next_attempt_at <= now)


def due_query(now: datetime, limit: int = 1):
    """What is due, oldest first: one range scan of ``ix_notifications_due``."""
    return (select(Notification.id).where(_due(now))
            .order_by(Notification.next_attempt_at, Notification.id).limit(limit))


def _claim_update(notification_id: int, now: datetime) -> Claim | None:
    lease = now + timedelta(seconds=current_app.config["SERVICEDESK_NOTIFY_LEASE_SECONDS"])
    result = db.session.execute(
        update(Notification)
        .where(Notification.id == notification_id, _due(now))
        .values(attempts=Notification.attempts + 1, next_attempt_at=lease, claimed_until=lease)
        .returning(Notification.attempts)
    ).first()
    db.session.commit()
    return Claim(notification_id, result[0]) if result is not None else None


def claim_next(now: datetime | None = None) -> Claim | None:
    """Claim the row due longest ago that no other worker holds, or None."""
    now = now or utcnow()
    candidate = db.session.scalar(due_query(now).with_for_update(skip_locked=True))
    if candidate is None:
        db.session.commit()  # end the (read) transaction: SQLite's write lock with it
        return None
    return _claim_update(candidate, now)


def claim(notification_id: int, now: datetime | None = None) -> Claim | None:
    """Claim one row if it is due and free (a job for a row not due does nothing)."""
    return _claim_update(notification_id, now or utcnow())


def _finish(claimed: Claim, **values) -> bool:
    result = db.session.execute(
        update(Notification)
        .where(Notification.id == claimed.id, Notification.status == _PENDING,
               Notification.attempts == claimed.attempt)
        .values(claimed_until=None, **values)
    )
    db.session.commit()
    return result.rowcount == 1


def send_claimed(claimed: Claim, available: dict[str, object] | None = None) -> str:
    """Send a claimed row and record the outcome: "sent", "retry" or "failed"."""
    with read_only_transaction():
        notification = db.session.get(Notification, claimed.id, populate_existing=True)
        if notification is None:
            return "failed"
        message = to_message(notification)
        backend_name = notification.backend
    db.session.commit()  # nothing held while sending
    backend = (available if available is not None else backends()).get(backend_name)
    error, permanent = None, False
    if backend is None:
        error = f"no notifier named {backend_name!r} is installed and enabled"
    else:
        try:
            backend.send(message)
        except PermanentFailure as exc:
            error, permanent = f"{exc}" or type(exc).__name__, True
        except Exception as exc:  # any other failure may pass: retry later
            error = f"{type(exc).__name__}: {exc}"
    now = utcnow()
    if error is None:
        _finish(claimed, status="sent", sent_at=now, last_error=None)
        log.info("notification %s sent", claimed.id)
        return "sent"
    error = error[:MAX_ERROR]
    max_attempts = current_app.config["SERVICEDESK_NOTIFY_MAX_ATTEMPTS"]
    if permanent or claimed.attempt >= max_attempts:
        _finish(claimed, status="failed", last_error=error)
        log.warning("notification %s failed for good after %s attempt(s): %s",
                    claimed.id, claimed.attempt, error)
        return "failed"
    _finish(claimed, next_attempt_at=now + backoff(claimed.attempt), last_error=error)
    log.info("notification %s attempt %s failed, will retry: %s", claimed.id,
             claimed.attempt, error)
    return "retry"


def deliver_one(notification_id: int) -> str | None:
    """Deliver row ``notification_id`` if it is due; its outcome, or None if not due."""
    claimed = claim(notification_id)
    return send_claimed(claimed) if claimed is not None else None


def deliver_due(limit: int | None = None, seconds: float = 50.0) -> dict[str, int]:
    """Deliver what is due, oldest first: at most ``limit`` rows and about ``seconds``.

    Bounded so one run never outlives its schedule slot (the sweep runs every 60 s);
    what is left is delivered by the next run. Returns how many rows ended how.
    """
    limit = limit or current_app.config["SERVICEDESK_NOTIFY_BATCH"]
    deadline = time.monotonic() + seconds
    counts = {"sent": 0, "retry": 0, "failed": 0}
    available = backends()
    for _ in range(limit):
        if time.monotonic() > deadline:
            break
        claimed = claim_next()
        if claimed is None:
            break
        counts[send_claimed(claimed, available)] += 1
    return counts
