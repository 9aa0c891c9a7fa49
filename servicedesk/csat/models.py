"""The survey table: one row per resolution of a ticket (of any kind).

The link's token itself is never stored, only its SHA-256: a copy of the database does
not let anyone answer (or reopen) in a requester's name. The row is also what makes the
link single-use: ``answered_at`` is set once and never again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.tickets.models import Ticket
from servicedesk.types import UTCDateTime


class Survey(db.Model):
    __tablename__ = "csat_surveys"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating"),
        Index("ix_csat_surveys_ticket", "ticket_id", "id"),
        # csat_stats(): surveys of a period, by when the resolution happened.
        Index("ix_csat_surveys_resolved", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    resolved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    ticket: Mapped[Ticket] = relationship()
