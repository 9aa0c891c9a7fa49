"""The service-request kind of ticket."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.catalogue.models import Offering
from servicedesk.tickets.models import Ticket

PREFIX = "REQ"
APPROVAL_STATES = ("not_required", "pending", "approved", "rejected")


class ServiceRequest(Ticket):
    __tablename__ = "service_requests"

    id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("catalogue_offerings.id"), index=True)
    # The form's answers by field key, as JSON values (dates as ISO strings).
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    approval: Mapped[str] = mapped_column(String(16), default="not_required")
    rejection_reason: Mapped[str | None] = mapped_column(Text)

    offering: Mapped[Offering] = relationship()

    __mapper_args__ = {"polymorphic_identity": "request"}
