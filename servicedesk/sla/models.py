"""SLA tables: business-hours calendars, policies and per-ticket clocks.

Clock rows are *derived* data: ``servicedesk.sla.service.compute_clocks`` rebuilds them
from the ticket's own history (its audit trail and first response), so a row can
always be recomputed (``servicedesk sla repair``) and never drifts for good.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, SmallInteger, String, text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.types import UTCDateTime, utcnow

METRICS = ("response", "resolution")
DEFAULT_PAUSE_STATUSES = ("pending:awaiting_requester",)
DEFAULT_WARNING_PERCENT = 75


class SlaCalendar(db.Model):
    """Working hours: a time zone, intervals per weekday (JSON) and holidays (JSON).

    ``week``: {"0": [["09:00", "17:00"], ...], ...} (0 = Monday .. 6 = Sunday, wall
    clock in ``timezone``, "24:00" ends a day); ``holidays``: ["2026-12-25",
    ["2026-12-24", "2026-12-31"], ...] (dates, or inclusive ranges). Validated by
    :class:`~servicedesk.sla.calendar.BusinessCalendar` before it is stored.
    """

    __tablename__ = "sla_calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    week: Mapped[dict] = mapped_column(JSON)
    holidays: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class SlaPolicy(db.Model):
    """Targets for the tickets its rules match; the first active match by position wins.

    Match rules are JSON lists (empty = any): ``kinds``, ``priorities``,
    ``service_ids``, ``category_ids`` (the category or the subcategory). Targets are
    business minutes on ``calendar``; NULL means no target for that metric.
    ``pause_statuses`` lists "status" or "status:pending_reason" entries that stop the
    clocks. ``steps``: the escalation steps, JSON validated by
    ``servicedesk.sla.steps.check_steps`` (format in docs/architecture.md).
    """

    __tablename__ = "sla_policies"
    __table_args__ = (
        CheckConstraint("response_minutes > 0", name="response_minutes"),
        CheckConstraint("resolution_minutes > 0", name="resolution_minutes"),
        CheckConstraint("warning_percent BETWEEN 1 AND 99", name="warning_percent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    kinds: Mapped[list] = mapped_column(JSON, default=list)
    priorities: Mapped[list] = mapped_column(JSON, default=list)
    service_ids: Mapped[list] = mapped_column(JSON, default=list)
    category_ids: Mapped[list] = mapped_column(JSON, default=list)
    response_minutes: Mapped[int | None] = mapped_column()
    resolution_minutes: Mapped[int | None] = mapped_column()
    calendar_id: Mapped[int] = mapped_column(ForeignKey("sla_calendars.id"), index=True)
    pause_statuses: Mapped[list] = mapped_column(
        JSON, default=lambda: list(DEFAULT_PAUSE_STATUSES))
    warning_percent: Mapped[int] = mapped_column(SmallInteger, default=DEFAULT_WARNING_PERCENT)
    steps: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    calendar: Mapped[SlaCalendar] = relationship()

    __mapper_args__ = {"version_id_col": version}


class SlaClock(db.Model):
    """One metric's clock of one ticket, as computed from the ticket's history.

    ``paused_seconds``: business time excluded so far by *finished* pauses (and, for
    the resolution clock, time spent resolved before a reopen); ``paused_since``: the
    start of the pause in progress. ``due_at``/``warning_at`` are NULL while paused
    (unknown until the clock runs again) unless already passed. ``met_at``: when the
    clock stopped for good (first response; resolved). ``breached_at``: the due
    instant, once the clock is seen to have run past it.
    """

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "metric"),
        CheckConstraint("metric IN ('response', 'resolution')", name="metric"),
        # What becomes due / reaches its warning next: running clocks only.
        Index("ix_sla_clocks_due", "due_at",
              sqlite_where=text("met_at IS NULL"), postgresql_where=text("met_at IS NULL")),
        Index("ix_sla_clocks_warning", "warning_at",
              sqlite_where=text("met_at IS NULL"), postgresql_where=text("met_at IS NULL")),
        # --- escalation: the sweep's "what is due" (servicedesk.sla.escalation) ---
        # Clocks with an unfired step only, in (instant, id) order for keyset batches.
        Index("ix_sla_clocks_next_step", "next_step_at", "id",
              sqlite_where=text("next_step_at IS NOT NULL"),
              postgresql_where=text("next_step_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(16))
    policy_id: Mapped[int] = mapped_column(ForeignKey("sla_policies.id"), index=True)
    target_seconds: Mapped[int] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paused_seconds: Mapped[int] = mapped_column(default=0)
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warning_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # --- escalation (servicedesk.sla.escalation) ---
    # The earliest instant at which something of this clock not yet fired comes due
    # (its warning, its breach, an escalation step); NULL when nothing is pending (met,
    # paused before its due instant, or all fired). Kept by refresh_clocks and firing.
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # --- reports (servicedesk.reports) ---
    # Business seconds the clock ran until it stopped (met_at); NULL while it runs.
    elapsed_seconds: Mapped[int | None] = mapped_column()

    policy: Mapped[SlaPolicy] = relationship()


# --- escalation (servicedesk.sla.escalation) -------------------------------------------


class SlaEscalation(db.Model):
    """One escalation step (or a clock's warning / breach event) that fired: exactly once.

    Written in the same transaction as the step's effects and its outbox rows; the
    unique (ticket, metric, step_key) makes every racing worker or sweep after the
    first roll back. ``step_key`` is the step's ``key``, or "_warning" / "_breach" for
    the clock's own events (a step key cannot contain "_"). ``due_at``: the instant it
    was due; ``fired_at``: when it fired. History of fact: never updated or deleted.
    """

    __tablename__ = "sla_escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "metric", "step_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(32))
    step_key: Mapped[str] = mapped_column(String(48))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- OLAs (operational level agreements) -----------------------------------------------

OLA_METRICS = ("response", "resolution")


class GroupOla(db.Model):
    """A group's own operational targets, measured only while a ticket is with it.

    ``target_minutes``: resolution within the group (business minutes on ``calendar``);
    ``response_minutes`` (optional): until someone of the group is assigned. Pauses and
    warning threshold as for policies. One per group; never deleted, only deactivated
    (its clocks are then dropped: they are derived data).
    """

    __tablename__ = "group_olas"
    __table_args__ = (
        CheckConstraint("target_minutes > 0", name="target_minutes"),
        CheckConstraint("response_minutes > 0", name="response_minutes"),
        CheckConstraint("warning_percent BETWEEN 1 AND 99", name="warning_percent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"),
                                          unique=True)
    target_minutes: Mapped[int] = mapped_column()
    response_minutes: Mapped[int | None] = mapped_column()
    calendar_id: Mapped[int] = mapped_column(ForeignKey("sla_calendars.id"), index=True)
    pause_statuses: Mapped[list] = mapped_column(
        JSON, default=lambda: list(DEFAULT_PAUSE_STATUSES))
    warning_percent: Mapped[int] = mapped_column(SmallInteger, default=DEFAULT_WARNING_PERCENT)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    group = relationship("Group")
    calendar: Mapped[SlaCalendar] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def name(self) -> str:
        """How messages name it: after its group."""
        return self.group.name if self.group is not None else f"#{self.group_id}"


class OlaClock(db.Model):
    """One OLA metric of one ticket for one group it was ever assigned to (derived).

    ``started_at``: when the ticket first came to the group; ``paused_seconds``:
    business time excluded so far (away from the group, in a pause status, resolved
    before a reopen); ``paused_since``: the pause in progress (away counts). Due,
    warning, met and breached as for SLA clocks. ``warning_notified_at`` /
    ``breach_notified_at`` are *not* derived: set once by the sweep's conditional
    UPDATE, so however many workers race, the group's manager is told once.
    """

    __tablename__ = "ola_clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "group_id", "metric"),
        CheckConstraint("metric IN ('response', 'resolution')", name="metric"),
        # The sweep's three questions, each over the rows still to be told only.
        Index("ix_ola_clocks_due", "due_at",
              sqlite_where=text("met_at IS NULL AND breach_notified_at IS NULL"),
              postgresql_where=text("met_at IS NULL AND breach_notified_at IS NULL")),
        Index("ix_ola_clocks_warning", "warning_at",
              sqlite_where=text("met_at IS NULL AND warning_notified_at IS NULL"),
              postgresql_where=text("met_at IS NULL AND warning_notified_at IS NULL")),
        Index("ix_ola_clocks_breached", "breached_at",
              sqlite_where=text("breached_at IS NOT NULL AND breach_notified_at IS NULL"),
              postgresql_where=text("breached_at IS NOT NULL AND breach_notified_at IS NULL")),
        Index("ix_ola_clocks_group_id", "group_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(16))
    target_seconds: Mapped[int] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paused_seconds: Mapped[int] = mapped_column(default=0)
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warning_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warning_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    breach_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OlaGroupChange(db.Model):
    """The group ids behind one ``group`` audit entry of a ticket.

    The audit trail shows a group change by the group's *name* (what people read). A
    name is not a stable key: a group may be renamed, and its old name given to another
    group. So when a ticket's group changes, the ids it moved between are written here,
    in the same transaction as the audit entry, keyed by it: history of fact, never
    updated, from which OLA clocks are derived (an entry without a row here is read by
    name, as the migration that added this table did for older entries).
    """

    __tablename__ = "ola_group_changes"
    __table_args__ = (Index("ix_ola_group_changes_ticket", "ticket_id", "audit_id"),)

    audit_id: Mapped[int] = mapped_column(
        ForeignKey("ticket_audit.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    # No foreign keys: what a ticket moved between stays true if a group goes away.
    old_group_id: Mapped[int | None] = mapped_column()
    new_group_id: Mapped[int | None] = mapped_column()

    entry = relationship("AuditEntry")
