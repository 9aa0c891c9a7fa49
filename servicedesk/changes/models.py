"""The change kind of ticket, and what change management keeps beside it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.tickets.models import Ticket
from servicedesk.types import UTCDateTime, utcnow

PREFIX = "CHG"
CHANGE_TYPES = ("standard", "normal", "emergency")
RISK_LEVELS = ("low", "medium", "high")
REVIEW_OUTCOMES = ("successful", "with_issues", "failed", "backed_out")


class ChangeTemplate(db.Model):
    """A pre-approved standard change: admins define it, agents raise changes from it."""

    __tablename__ = "change_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    implementation_plan: Mapped[str] = mapped_column(Text, default="")
    backout_plan: Mapped[str] = mapped_column(Text, default="")
    test_plan: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class Change(Ticket):
    __tablename__ = "changes"
    __table_args__ = (
        CheckConstraint("change_type IN ('standard', 'normal', 'emergency')", name="change_type"),
        # The calendar and conflict detection read planned windows by start.
        Index("ix_changes_planned", "planned_start", "planned_end"),
    )

    id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    change_type: Mapped[str] = mapped_column(String(16), default="normal")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("change_templates.id"))
    risk_level: Mapped[str | None] = mapped_column(String(8))
    risk_answers: Mapped[dict | None] = mapped_column(JSON)
    implementation_plan: Mapped[str | None] = mapped_column(Text)
    backout_plan: Mapped[str | None] = mapped_column(Text)
    test_plan: Mapped[str | None] = mapped_column(Text)
    planned_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    planned_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    actual_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    actual_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Emergency changes are authorised first and reviewed afterwards.
    review_required: Mapped[bool] = mapped_column(default=False)
    review_outcome: Mapped[str | None] = mapped_column(String(16))
    review_notes: Mapped[str | None] = mapped_column(Text)

    template: Mapped[ChangeTemplate | None] = relationship()

    __mapper_args__ = {"polymorphic_identity": "change"}


class RiskModel(db.Model):
    """The risk questionnaire, its thresholds and the approval route per level, as data.

    One row (id 1) once an admin has saved it; until then the defaults in
    ``changes.risk`` apply (a fresh install needs nothing seeded).
    """

    __tablename__ = "change_risk_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    questions: Mapped[list] = mapped_column(JSON, default=list)
    thresholds: Mapped[dict] = mapped_column(JSON, default=dict)
    routes: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class FreezeWindow(db.Model):
    """A period in which no normal or standard change may be planned (emergencies may)."""

    __tablename__ = "change_freeze_windows"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window"),
        Index("ix_change_freeze_windows_span", "starts_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    created_by: Mapped[User | None] = relationship()

    __mapper_args__ = {"version_id_col": version}


# Problems a change fixes; incidents a change caused. Both point into ``tickets`` (the
# other kinds' packages are not imported: a link is by ticket id, checked by kind).
change_problems = db.Table(
    "change_problems",
    db.Column("change_id", ForeignKey("changes.id", ondelete="CASCADE"), primary_key=True),
    db.Column("problem_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    db.Column("created_at", UTCDateTime, default=utcnow),
    Index("ix_change_problems_problem", "problem_id", "change_id"),
)
change_incidents = db.Table(
    "change_incidents",
    db.Column("change_id", ForeignKey("changes.id", ondelete="CASCADE"), primary_key=True),
    db.Column("incident_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    db.Column("created_at", UTCDateTime, default=utcnow),
    Index("ix_change_incidents_incident", "incident_id", "change_id"),
)
