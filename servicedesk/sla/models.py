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
    clocks. ``steps`` (escalation steps) is kept for the escalation increment: always
    [] for now.
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

    policy: Mapped[SlaPolicy] = relationship()
