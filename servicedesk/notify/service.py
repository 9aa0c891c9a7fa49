"""The notification outbox: queue messages in the caller's transaction; admin it.

``queue_notification`` renders a message and *adds* its row to the session: it is
committed (or rolled back) with the change that caused it, so a notification exists
exactly when its cause does. Nothing is sent here, and never inside a web request:
after the commit, new rows are handed to a worker (with Redis) or left to the
in-process timer, and the periodic ``deliver_due`` sweep picks up anything a lost job
missed (see ``servicedesk.notify.delivery``). A unique ``dedupe_key`` per message makes
queueing idempotent, so at-least-once callers never queue a message twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from flask_babel import gettext as _
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.notify.models import STATUS_SQL, STATUSES, Notification
from servicedesk.notify.render import header_safe, render
from servicedesk.tickets.models import Ticket
from servicedesk.types import utcnow

log = logging.getLogger(__name__)

EVENTS = (
    "sla.warning", "sla.breach",
    "ticket.created", "ticket.assigned", "ticket.commented", "ticket.transitioned",
)
DELIVER_JOB = "servicedesk.notify.jobs.deliver"
_SESSION_KEY = "servicedesk_new_notifications"
_ADDRESS = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+$")


@dataclass(frozen=True)
class Message:
    """What a backend's ``send()`` gets: everything rendered, nothing to look up."""

    address: str
    subject: str
    body_text: str
    body_html: str | None
    headers: dict[str, str]
    dedupe_key: str
    ticket_number: str | None


class PermanentFailure(Exception):
    """Raised by a backend when retrying cannot help (address refused, 5xx reply...)."""


# --- queueing ------------------------------------------------------------------------


def queue_notification(event: str, recipient: User, *, ticket: Ticket | None = None,
                       context: dict | None = None, dedupe_key: str,
                       deliver_after: datetime | None = None,
                       backend: str = "email", fresh: bool = False) -> Notification | None:
    """Render the event's template in the recipient's locale and ADD an outbox row to
    db.session (no commit: it commits with the change that caused it). None if the
    recipient is inactive or has no address for that backend, or a row with that
    dedupe_key is already in this session/DB. ``fresh``: the key names a row made in
    this transaction, so only this session is looked at (the unique key still guards)."""
    if recipient is None or not recipient.active:
        return None
    address = recipient_address(backend, recipient)
    if address is None:
        return None
    # No autoflush: queueing must not flush the caller's half-made change early (its
    # constraint errors belong to its own commit); rows of this session are in .new.
    with db.session.no_autoflush:
        if _queued_already(dedupe_key, fresh):
            return None
        subject, body_text, body_html = render(
            event, recipient, {**(context or {}), "ticket": ticket, "event": event})
    if ticket is not None:
        subject = header_safe(f"[{ticket.number}] {subject}")
    now = utcnow()
    notification = Notification(
        dedupe_key=dedupe_key, event=event, backend=backend,
        ticket_id=ticket.id if ticket is not None else None, recipient_id=recipient.id,
        address=address, subject=subject, body_text=body_text, body_html=body_html,
        headers=thread_headers(dedupe_key, ticket), status="pending", attempts=0,
        deliver_after=deliver_after,
        next_attempt_at=max(deliver_after, now) if deliver_after is not None else now,
        created_at=now,
    )
    db.session.add(notification)
    return notification


def _queued_already(dedupe_key: str, fresh: bool = False) -> bool:
    for obj in db.session.new:
        if isinstance(obj, Notification) and obj.dedupe_key == dedupe_key:
            return True
    if fresh:
        return False
    return db.session.scalar(
        select(Notification.id).where(Notification.dedupe_key == dedupe_key)
    ) is not None


def recipient_address(backend: str, user: User) -> str | None:
    """Where ``backend`` reaches ``user``, or None.

    E-mail uses the user's address (refused if it could smuggle a header). Another
    backend says itself, through an optional ``address_for(user)`` method.
    """
    if backend == "email":
        address = (user.email or "").strip()
        if not address or not _ADDRESS.match(address) or header_safe(address) != address:
            return None
        return address
    from servicedesk.notify.delivery import backends

    found = backends().get(backend)
    resolve = getattr(found, "address_for", None)
    if resolve is None:
        return None
    try:
        address = resolve(user)
    except Exception:
        log.exception("notifier %r failed to resolve an address", backend)
        return None
    if not isinstance(address, str):
        return None
    return header_safe(address, 320) or None


def _mail_domain() -> str:
    config = current_app.config
    domain = (config.get("SERVICEDESK_MAIL_DOMAIN")
              or (config.get("SERVICEDESK_SMTP_FROM") or "").rpartition("@")[2].rstrip(">"))
    return re.sub(r"[^A-Za-z0-9.\-]", "", domain) or "localhost"


def message_id(dedupe_key: str) -> str:
    """The Message-ID of a notification: the same on every attempt, so a retry of a
    message that did arrive is recognisable as a duplicate by the receiving side."""
    digest = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:32]
    return f"<notify.{digest}@{_mail_domain()}>"


def thread_id(ticket: Ticket) -> str:
    """One id per ticket that every message about it refers to, so clients thread them."""
    number = re.sub(r"[^A-Za-z0-9]", "", ticket.number)
    return f"<ticket.{number}@{_mail_domain()}>"


def thread_headers(dedupe_key: str, ticket: Ticket | None) -> dict[str, str]:
    headers = {"Message-ID": message_id(dedupe_key)}
    if ticket is not None:
        headers["In-Reply-To"] = thread_id(ticket)
        headers["References"] = thread_id(ticket)
        headers["X-Servicedesk-Ticket"] = header_safe(ticket.number, 40)
    return headers


def to_message(notification: Notification) -> Message:
    ticket = notification.ticket
    return Message(
        address=notification.address, subject=notification.subject,
        body_text=notification.body_text, body_html=notification.body_html,
        headers=dict(notification.headers or {}), dedupe_key=notification.dedupe_key,
        ticket_number=ticket.number if ticket is not None else None,
    )


# --- after commit: hand new rows to a worker -----------------------------------------


@event.listens_for(Session, "after_flush")
def _collect_new(session, _flush_context):
    for obj in session.new:
        if isinstance(obj, Notification) and obj.id is not None:
            session.info.setdefault(_SESSION_KEY, []).append((obj.id, obj.next_attempt_at))


def queued_in_transaction() -> list[Notification]:
    """The outbox rows this session's transaction has queued so far, flushed or not
    (flushed ones come from the session, which holds them until the commit)."""
    session = db.session()
    rows = [obj for obj in session.new if isinstance(obj, Notification)]
    with session.no_autoflush:
        rows += [session.get(Notification, row_id)
                 for row_id, _at in session.info.get(_SESSION_KEY, ())]
    return [row for row in rows if row is not None]


@event.listens_for(Session, "after_soft_rollback")
def _forget_new(session, previous_transaction):
    if not previous_transaction.nested:
        session.info.pop(_SESSION_KEY, None)


@event.listens_for(Session, "after_commit")
def _kick_delivery(session):
    if session.in_nested_transaction():  # a savepoint: the rows may still roll back
        return
    new = session.info.pop(_SESSION_KEY, None)
    if new:
        kick_delivery(new)


def kick_delivery(rows: list[tuple[int, datetime | None]]) -> None:
    """Enqueue a delivery job per new row (with Redis), at its due instant.

    Never raises: the rows are committed, and the periodic ``deliver_due`` sweep
    delivers them even if Redis is away. Without Redis, the in-process job thread (if
    this process runs one) is woken to run the sweep now; mail is never sent inside
    the web request itself.
    """
    if not has_app_context():
        return
    try:
        from servicedesk.jobs import get_queue

        queue = get_queue()
        if queue is None:
            runner = current_app.extensions["servicedesk"].get("in_process_jobs")
            if runner is not None:
                runner.wake("deliver-notifications")
            return
        now = utcnow()
        for notification_id, due in rows:
            job_id = f"notify-{notification_id}"
            if due is not None and due > now + timedelta(seconds=1):
                queue.enqueue_at(due, DELIVER_JOB, notification_id, job_id=job_id)
            else:
                queue.enqueue(DELIVER_JOB, notification_id, job_id=job_id)
    except Exception:
        log.exception("could not enqueue notification delivery; the sweep will deliver")


# --- administration ------------------------------------------------------------------


def _require_admin(actor: User | None) -> None:
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins may manage notifications."))


def list_notifications(actor: User | None, status: str | None = None, *,
                       after_id: int | None = None, limit: int = 50) -> list[Notification]:
    """Notifications, newest first (keyset by id), optionally of one status."""
    _require_admin(actor)
    if status is not None and status not in STATUSES:
        raise ValidationError(
            _("Unknown status %(status)s.", status=repr(status)),
            fields={"status": [_("Must be one of: %(statuses)s.", statuses=", ".join(STATUSES))]},
        )
    query = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Notification.status == STATUS_SQL[status])
    if after_id is not None:
        query = query.where(Notification.id < after_id)
    return list(db.session.scalars(query))


def retry_notification(actor: User | None, notification_id: int) -> Notification:
    """Make a failed notification due again now, with a fresh count of attempts."""
    _require_admin(actor)
    notification = db.session.get(Notification, notification_id)
    if notification is None:
        raise NotFound(_("No notification %(id)s.", id=notification_id))
    if notification.status != "failed":
        raise Conflict(
            _("Notification %(id)s is %(status)s; only failed ones can be retried.",
              id=notification_id, status=notification.status),
            fields={"status": [_("Is %(status)s, not failed.", status=notification.status)]},
            code="not_failed",
        )
    notification.status = "pending"
    notification.attempts = 0
    notification.next_attempt_at = utcnow()
    notification.claimed_until = None
    log.info("notification %s queued again by %s", notification_id,
             actor.username if actor is not None else "the system")
    db.session.commit()
    kick_delivery([(notification.id, None)])
    return notification
