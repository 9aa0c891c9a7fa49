"""Approvals on tickets of any kind: who must approve, by which rule, and what they said.

An ``Approval`` hangs on a ticket and has approver *slots* (``ApprovalApprover``): a
named user, or a group (any one active member fills it). Each person decides at most
once (``ApprovalDecision``); a decision fills one slot. The rule says when enough
slots approved. Nothing here knows which kind of ticket it is: the kind that asked
for the approval is told of the outcome through its registered decision handler
(``servicedesk.approvals.service.register_decision_handler``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import Group, User
from servicedesk.tickets.models import Ticket
from servicedesk.types import UTCDateTime, utcnow

RULES = ("any", "all", "quorum")
STATUSES = ("pending", "approved", "rejected", "cancelled")
DECISIONS = ("approve", "reject")


class Approval(db.Model):
    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint(f"rule IN {RULES!r}", name="rule"),
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        CheckConstraint("quorum IS NULL OR quorum >= 1", name="quorum"),
        Index("ix_approvals_ticket", "ticket_id", "id"),
        # The escalation sweep: pending approvals past due, not yet escalated. Partial,
        # so decided approvals cost it nothing.
        Index("ix_approvals_overdue", "due_at",
              sqlite_where=text("status = 'pending' AND escalated_at IS NULL"),
              postgresql_where=text("status = 'pending' AND escalated_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(120))
    rule: Mapped[str] = mapped_column(String(8), default="any")
    quorum: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(default=1)

    ticket: Mapped[Ticket] = relationship()
    requested_by: Mapped[User | None] = relationship()
    approvers: Mapped[list[ApprovalApprover]] = relationship(
        back_populates="approval", order_by="ApprovalApprover.id",
        cascade="all, delete-orphan")
    decisions: Mapped[list[ApprovalDecision]] = relationship(
        back_populates="approval", order_by="ApprovalDecision.id",
        cascade="all, delete-orphan")

    __mapper_args__ = {"version_id_col": version}

    @property
    def overdue(self) -> bool:
        return self.status == "pending" and self.due_at is not None and self.due_at <= utcnow()


class ApprovalApprover(db.Model):
    """One slot: a user, or a group any one of whose active members may fill it."""

    __tablename__ = "approval_approvers"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_approver"),
        Index("ix_approval_approvers_approval", "approval_id", "id"),
        # The inbox: "approvals naming me", and "naming one of my groups".
        Index("ix_approval_approvers_user", "user_id", "approval_id"),
        Index("ix_approval_approvers_group", "group_id", "approval_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))

    approval: Mapped[Approval] = relationship(back_populates="approvers")
    user: Mapped[User | None] = relationship()
    group: Mapped[Group | None] = relationship()


class ApprovalDecision(db.Model):
    """One person's approve or reject; it fills ``slot`` (the one it was counted for)."""

    __tablename__ = "approval_decisions"
    __table_args__ = (
        CheckConstraint(f"decision IN {DECISIONS!r}", name="decision"),
        # One decision per person and approval, whatever two browser tabs attempt.
        db.UniqueConstraint("approval_id", "user_id"),
        db.UniqueConstraint("slot_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id", ondelete="CASCADE"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("approval_approvers.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    approval: Mapped[Approval] = relationship(back_populates="decisions")
    slot: Mapped[ApprovalApprover] = relationship()
    user: Mapped[User] = relationship()
