"""Tables of the work-item core."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    func,
    literal_column,
    text,
    type_coerce,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import Group, User
from servicedesk.types import UTCDateTime, utcnow

LEVELS = ("high", "medium", "low")
CHANNELS = ("web", "api", "email", "chat", "phone")

# "Breaches next" orders by the earliest unmet SLA due instant, tickets without one
# last. Keyset paging needs a key without NULLs, so the sort key (and its index,
# ix_tickets_sla_due) is COALESCE(sla_due_at, this instant). The literal is spelled
# as SQLite stores datetimes, so both back ends compare it with stored values alike,
# and it is SQL text (not a parameter), so the planners match it to the index.
SLA_NEVER = datetime(9999, 12, 31, tzinfo=timezone.utc)
_SLA_NEVER_SQL = literal_column("'9999-12-31 00:00:00.000000'")


class Category(db.Model):
    """A category, or (with a parent) a subcategory. Admin-managed; never deleted."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), index=True)
    default_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL")
    )
    active: Mapped[bool] = mapped_column(default=True)

    parent: Mapped[Category | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Category]] = relationship(
        back_populates="parent", order_by="Category.name"
    )
    default_group: Mapped[Group | None] = relationship()

    @property
    def path(self) -> str:
        return f"{self.parent.name} / {self.name}" if self.parent else self.name


class PriorityRule(db.Model):
    """One cell of the impact x urgency matrix."""

    __tablename__ = "priority_matrix"
    __table_args__ = (CheckConstraint("priority BETWEEN 1 AND 5", name="priority"),)

    impact: Mapped[str] = mapped_column(String(8), primary_key=True)
    urgency: Mapped[str] = mapped_column(String(8), primary_key=True)
    priority: Mapped[int] = mapped_column(SmallInteger)


class TicketCounter(db.Model):
    """The last number handed out per prefix (INC, PRB, ...). Numbers are never reused."""

    __tablename__ = "ticket_counters"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class Ticket(db.Model):
    """The work item every ITIL process shares."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint("priority BETWEEN 1 AND 5", name="priority"),
            # The agent queue: open tickets, most urgent first. Partial, so millions of
        # closed tickets cost it nothing. Queries must say ``is_open == true()``.
        Index(
            "ix_tickets_open_queue", "priority", "created_at", "id",
            sqlite_where=text("is_open = 1"), postgresql_where=text("is_open"),
        ),
        Index("ix_tickets_group_status", "group_id", "status"),
        Index("ix_tickets_requester", "requester_id", "created_at", "id"),
        Index("ix_tickets_assignee", "assignee_id", "status"),
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_resolved", "status", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    number: Mapped[str] = mapped_column(String(20), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32))
    # Derived from status by the kind's workflow; kept as a column for the queue index.
    is_open: Mapped[bool] = mapped_column(default=True)
    impact: Mapped[str] = mapped_column(String(8), default="medium")
    urgency: Mapped[str] = mapped_column(String(8), default="medium")
    priority: Mapped[int] = mapped_column(SmallInteger, default=3)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), index=True)
    subcategory_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    # References into the service catalogue and the CMDB; their tables come with them.
    service_id: Mapped[int | None] = mapped_column(index=True)
    ci_id: Mapped[int | None] = mapped_column(index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    support_line: Mapped[int | None] = mapped_column(SmallInteger)
    channel: Mapped[str] = mapped_column(String(16), default="web")
    pending_reason: Mapped[str | None] = mapped_column(String(32))
    resolution_code: Mapped[str | None] = mapped_column(String(32))
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    reopen_count: Mapped[int] = mapped_column(default=0)
    escalation_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SLA bookkeeping, kept by servicedesk.sla.service (written without bumping
    # ``version``: a clock refresh never makes someone's save stale). The policy id has
    # no foreign key so adding it did not rebuild this table on SQLite; policies are
    # never deleted. ``sla_due_at``: the earliest due instant of the unmet clocks.
    sla_policy_id: Mapped[int | None] = mapped_column()
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The plugin whose servicedesk_sla_policy answer changed the policy or targets the
    # clocks run on (NULL: the policy's own); shown in the API's ``sla.targets``.
    sla_adjusted_by: Mapped[str | None] = mapped_column(String(100))
    # Each SLA clock's outcome once it stopped, copied from sla_clocks by the same
    # refresh (migration 0019), so reports read one row per ticket: breached or not
    # (NULL: no stopped clock) and the business seconds it ran (NULL: not measured).
    sla_response_breached: Mapped[bool | None] = mapped_column()
    sla_response_business_seconds: Mapped[int | None] = mapped_column()
    sla_resolution_breached: Mapped[bool | None] = mapped_column()
    sla_resolution_business_seconds: Mapped[int | None] = mapped_column()
    escalation_level: Mapped[int] = mapped_column(SmallInteger, default=0,
                                                  server_default=text("0"))
    version: Mapped[int] = mapped_column(default=1)

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    group: Mapped[Group | None] = relationship()
    category: Mapped[Category | None] = relationship(foreign_keys=[category_id])
    subcategory: Mapped[Category | None] = relationship(foreign_keys=[subcategory_id])
    sla_policy = relationship(
        "SlaPolicy", primaryjoin="foreign(Ticket.sla_policy_id) == SlaPolicy.id", viewonly=True)
    response_clock = relationship(
        "SlaClock", uselist=False, viewonly=True,
        primaryjoin="and_(SlaClock.ticket_id == Ticket.id, SlaClock.metric == 'response')")
    resolution_clock = relationship(
        "SlaClock", uselist=False, viewonly=True,
        primaryjoin="and_(SlaClock.ticket_id == Ticket.id, SlaClock.metric == 'resolution')")

    @hybrid_property
    def sla_due_rank(self) -> datetime:
        """The "breaches next" sort key: ``sla_due_at``, or SLA_NEVER when no clock runs."""
        return self.sla_due_at or SLA_NEVER

    @sla_due_rank.inplace.expression
    @classmethod
    def _sla_due_rank_expression(cls):
        return type_coerce(func.coalesce(cls.sla_due_at, _SLA_NEVER_SQL), UTCDateTime)

    @property
    def open_seconds(self) -> int:
        """How long the requester has been waiting: until resolution, or until now."""
        end = self.resolved_at or self.closed_at or utcnow()
        return max(0, int((end - self.created_at).total_seconds()))

    __mapper_args__ = {
        "polymorphic_on": "kind",
        "polymorphic_identity": "ticket",
        "version_id_col": version,
    }


# Open tickets, breaches next (see SLA_NEVER), then as the queue: "what breaches next"
# and the queue's "due" sort read it in order and stop after a page.
Index(
    "ix_tickets_sla_due",
    func.coalesce(Ticket.__table__.c.sla_due_at, _SLA_NEVER_SQL), "priority", "created_at", "id",
    sqlite_where=text("is_open = 1"), postgresql_where=text("is_open"),
)


class Comment(db.Model):
    """A public reply (the requester sees it) or an internal note (staff only)."""

    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User | None] = relationship()


class AuditEntry(db.Model):
    """One change to a ticket: who, when, what, from, to. Written in the change's transaction."""

    __tablename__ = "ticket_audit"
    __table_args__ = (Index("ix_ticket_audit_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)

    actor: Mapped[User | None] = relationship()
