"""The incident kind of ticket."""

from __future__ import annotations

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from servicedesk.tickets.models import Ticket

PREFIX = "INC"


class Incident(Ticket):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    major: Mapped[bool] = mapped_column(default=False)

    __mapper_args__ = {"polymorphic_identity": "incident"}
