"""The problem kind of ticket and its links to incidents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.incidents.models import Incident
from servicedesk.tickets.models import Ticket
from servicedesk.types import UTCDateTime, utcnow

PREFIX = "PRB"


class Problem(Ticket):
    """The unknown cause of one or more incidents; a known error once it has a workaround.

    ``impact`` (on tickets) is derived: the higher of ``base_impact`` (what staff set)
    and what the number of linked incidents implies (see service.derived_impact).
    """

    __tablename__ = "problems"

    id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    base_impact: Mapped[str] = mapped_column(String(8), default="low")
    root_cause: Mapped[str | None] = mapped_column(Text)
    workaround: Mapped[str | None] = mapped_column(Text)
    # +1 whenever the workaround text changes: publishing is idempotent per version.
    workaround_version: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    known_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Kept by the link/unlink service in the same transaction (lists show it for free).
    incident_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    __mapper_args__ = {"polymorphic_identity": "problem"}


class ProblemIncident(db.Model):
    """An incident linked to a problem (each pair at most once)."""

    __tablename__ = "problem_incidents"
    __table_args__ = (
        UniqueConstraint("problem_id", "incident_id"),
        # "Which problems is this incident linked to" starts from the incident.
        Index("ix_problem_incidents_incident", "incident_id", "problem_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"))
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The workaround version last published to this incident (0: none yet).
    published_version: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    problem: Mapped[Problem] = relationship()
    incident: Mapped[Incident] = relationship()
    linked_by: Mapped[User | None] = relationship()
