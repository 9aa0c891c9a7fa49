"""Attachments of tickets, and the inbound messages every channel has taken in.

``inbound_messages`` is the idempotency key of inbound channels: one row per
Message-ID (unique), written in the same transaction as the ticket or comment it
caused, so a message delivered twice (an MTA retry, an IMAP poll that died before
flagging it seen) changes nothing the second time. It is also the audit of what came
in and why it was ignored or refused.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.types import UTCDateTime, utcnow

INBOUND_STATUSES = ("processed", "ignored", "rejected", "failed")


class Attachment(db.Model):
    """A file kept with a ticket (optionally with the comment it came with).

    The bytes live on disk under a generated ``storage_key``; ``filename`` is only a
    sanitised label for the download, never a path.
    """

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket_comments.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket = relationship("Ticket")
    comment = relationship("Comment")


class InboundMessage(db.Model):
    """One message an inbound channel received (see the module docstring)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        CheckConstraint("status IN ('processed', 'ignored', 'rejected', 'failed')",
                        name="status"),
        Index("ix_inbound_messages_received", "received_at", "id"),
        # The loop guard counts a sender's recent messages.
        Index("ix_inbound_messages_sender", "sender", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sender: Mapped[str] = mapped_column(String(254), default="")
    subject: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"))

    ticket = relationship("Ticket")
