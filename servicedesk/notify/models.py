"""The outbox table: one row per message to deliver."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.types import UTCDateTime, utcnow

STATUSES = ("pending", "sent", "failed")
# Status values as SQL literals, not bound parameters: only then can SQLite's planner
# (and PostgreSQL's generic plans) prove a query matches a partial index.
STATUS_SQL = {status: literal_column(f"'{status}'") for status in STATUSES}


class Notification(db.Model):
    """A message to one recipient through one backend.

    ``pending`` rows are due at ``next_attempt_at``. A worker claims a row by moving
    ``next_attempt_at`` (and ``claimed_until``) a lease ahead and counting the attempt,
    so a worker killed mid-send frees the row when the lease runs out, with no separate
    recovery query: "what is due" stays one indexed query (``ix_notifications_due``).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        Index("ix_notifications_due", "next_attempt_at", "id",
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
        # The admin's list of failed deliveries (few rows, newest first). Not an index
        # on (status, id): SQLite's planner would prefer it to ix_notifications_due for
        # "what is due" (an equality beats a range when it has no statistics).
        Index("ix_notifications_failed", "id",
              sqlite_where=text("status = 'failed'"),
              postgresql_where=text("status = 'failed'")),
        Index("ix_notifications_ticket", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(32), default="email")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    deliver_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket = relationship("Ticket")
    recipient: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<Notification {self.id} {self.event} {self.status}>"
