"""Inbound channels (from the ``servicedesk_channels`` hook) and what they share.

A channel turns outside messages into tickets and comments through the service
functions. What every channel needs is here: the result type, the message log
(``inbound_messages``: one row per message id, the idempotency key) and
``record_with_change``, which writes that row — and the attachments — in the *same*
transaction as the ticket or comment the message caused, so a message is either fully
taken in or not at all, and a redelivery is recognised.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import event, func, select

from servicedesk.attachments.models import InboundMessage
from servicedesk.extensions import db
from servicedesk.plugins import call_hook
from servicedesk.tickets.models import Comment, Ticket
from servicedesk.types import utcnow

log = logging.getLogger(__name__)


@dataclass
class InboundResult:
    """What became of one inbound message.

    ``status``: ``processed`` (a ticket or comment), ``ignored`` (duplicate, auto-reply,
    bounce: nothing to do, nothing to tell), ``rejected`` (refused: unknown sender,
    malformed) or ``failed`` (our side broke; retry later).
    """

    status: str
    reason: str = ""
    message_id: str = ""
    ticket_number: str | None = None
    action: str | None = None  # "created" | "commented"

    @property
    def ok(self) -> bool:
        return self.status in ("processed", "ignored")


def channels() -> dict[str, object]:
    """The enabled plugins' channels by name."""
    found = {}
    for answer in call_hook("servicedesk_channels"):
        for channel in answer or []:
            name = getattr(channel, "name", None)
            if isinstance(name, str) and name:
                found.setdefault(name, channel)
    return found


def get_channel(name: str):
    """The channel ``name``, or None when no enabled plugin provides it."""
    return channels().get(name)


def poll_channels() -> dict[str, int]:
    """Periodic job ``poll-channels``: one ``poll()`` of every channel that has one.

    Returns how many messages each channel took in. A channel that raises is logged
    and the others still poll.
    """
    counts = {}
    for name, channel in channels().items():
        poll = getattr(channel, "poll", None)
        if poll is None:
            continue
        try:
            counts[name] = len(poll() or [])
        except Exception:
            log.exception("polling channel %s failed", name)
            db.session.rollback()
    return counts


# --- the message log -----------------------------------------------------------------


def find_message(message_id: str) -> InboundMessage | None:
    return db.session.scalars(
        select(InboundMessage).where(InboundMessage.message_id == message_id)
    ).one_or_none()


def recent_from(sender: str, seconds: int = 3600) -> int:
    """How many messages from ``sender`` were taken in (processed) in the last
    ``seconds``: the loop guard's measure."""
    from datetime import timedelta

    since = utcnow() - timedelta(seconds=seconds)
    return db.session.scalar(
        select(func.count()).select_from(InboundMessage).where(
            InboundMessage.sender == sender, InboundMessage.received_at >= since,
            InboundMessage.status == "processed"))


def record_message(channel: str, message_id: str, status: str, reason: str = "", *,
                   sender: str = "", subject: str = "", ticket_id: int | None = None,
                   commit: bool = True) -> InboundMessage:
    """Write (or, for a message that failed before, overwrite) the log row."""
    row = find_message(message_id) or InboundMessage(channel=channel, message_id=message_id)
    row.received_at = utcnow()
    row.status = status
    row.reason = (reason or "")[:2000]
    row.sender = (sender or "")[:254]
    row.subject = (subject or "")[:255]
    if ticket_id is not None:
        row.ticket_id = ticket_id
    db.session.add(row)
    if commit:
        db.session.commit()
    return row


@dataclass
class _Pending:
    """What to add right before the change's commit, once the ticket/comment exist."""

    channel: str
    message_id: str
    sender: str
    subject: str
    ticket: Ticket | None = None
    comment: Comment | None = None
    build_attachments: object = None  # callable(ticket, comment) -> None
    new_objects: list = field(default_factory=list)


@contextmanager
def record_with_change(channel: str, message_id: str, sender: str, subject: str,
                       ticket: Ticket | None = None, attachments=None):
    """Around one service call (``create_incident``, ``comment_incident``...), which
    commits: right before its commit, add the ``inbound_messages`` row (processed,
    naming the ticket) and let ``attachments(ticket, comment)`` add the attachment
    rows, so they commit with the change or not at all. ``ticket`` is the ticket a
    reply comments on; for a new ticket it is found among the objects the call
    flushed. Yields the pending record; after the block ``.ticket``/``.comment`` are
    set.
    """
    pending = _Pending(channel, message_id, sender, subject, ticket=ticket,
                       build_attachments=attachments)
    session = db.session()

    def after_flush(sess, _context):
        pending.new_objects.extend(sess.new)

    done = []

    def before_commit(sess):
        if done:
            return
        candidates = list(pending.new_objects) + list(sess.new)
        comment = next((o for o in candidates if isinstance(o, Comment)), None)
        if ticket is None:
            pending.ticket = next((o for o in candidates if isinstance(o, Ticket)), None)
            if pending.ticket is None:
                return  # an earlier commit of the call, not the change's
        elif comment is None:
            return
        pending.comment = comment
        done.append(True)
        row = find_message(message_id) or InboundMessage(channel=channel,
                                                         message_id=message_id)
        row.received_at = utcnow()
        row.status, row.reason = "processed", ""
        row.sender, row.subject = sender[:254], subject[:255]
        row.ticket = pending.ticket
        sess.add(row)
        if pending.build_attachments is not None:
            pending.build_attachments(pending.ticket, pending.comment)

    event.listen(session, "after_flush", after_flush)
    event.listen(session, "before_commit", before_commit)
    try:
        yield pending
    finally:
        event.remove(session, "after_flush", after_flush)
        event.remove(session, "before_commit", before_commit)


# --- demo -----------------------------------------------------------------------------


def seed_demo() -> None:
    """An incident that came in by e-mail, with an attachment (idempotent: the same
    Message-ID is taken in once). Needs the ``email`` channel; skipped without it."""
    from email.message import EmailMessage

    from servicedesk.identity.models import User

    channel = get_channel("email")
    employee = db.session.scalars(select(User).where(User.username == "employee")).first()
    if channel is None or employee is None or not hasattr(channel, "ingest"):
        return
    mail = EmailMessage()
    mail["From"] = f"{employee.name} <{employee.email}>"
    mail["To"] = "servicedesk@example.com"
    mail["Subject"] = "Scanner on the 2nd floor saves blank pages"
    mail["Message-ID"] = "<demo-scanner-1@example.com>"
    mail.set_content("Hello,\n\nevery page I scan on the 2nd floor comes out blank. The scan "
                     "log is attached.\n\nEmma\n")
    mail.add_attachment(b"2026-11-23 09:14 scan job 118: 3 pages, 0 bytes of image data\n",
                        maintype="text", subtype="plain", filename="scan.log")
    result = channel.ingest(mail.as_bytes())
    if result.status not in ("processed", "ignored"):
        log.warning("demo e-mail not taken in: %s %s", result.status, result.reason)
