"""Tables of the service catalogue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Column, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import Group
from servicedesk.types import UTCDateTime, utcnow

SERVICE_KINDS = ("business", "technical")
APPROVAL_RULES = ("none", "manager", "group")

# The CMDB's CIs that support a service. The CMDB knows nothing of it (cmdb/ imports no
# process package); deleting a CI or a service drops its links.
service_cis = Table(
    "service_cis",
    db.metadata,
    Column("service_id", ForeignKey("catalogue_services.id", ondelete="CASCADE"),
           primary_key=True),
    Column("ci_id", ForeignKey("cmdb_cis.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)


class Service(db.Model):
    """What IT offers: a business service (employees see it) or a technical one."""

    __tablename__ = "catalogue_services"
    __table_args__ = (CheckConstraint("kind IN ('business', 'technical')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="business")
    description: Mapped[str] = mapped_column(Text, default="")
    owner_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"))
    # The policy its tickets (requests and incidents naming the service) run under; it
    # wins over the SLA policies' match rules (servicedesk.sla.service.match_policy).
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    owner_group: Mapped[Group | None] = relationship()
    sla_policy = relationship("SlaPolicy")
    cis = relationship("ConfigurationItem", secondary=service_cis, order_by="ConfigurationItem.name")
    offerings: Mapped[list[Offering]] = relationship(
        back_populates="service", order_by="Offering.name")

    __mapper_args__ = {"version_id_col": version}


class Offering(db.Model):
    """Something to ask for under a service, with its form (data) and approval rule."""

    __tablename__ = "catalogue_offerings"
    __table_args__ = (
        CheckConstraint("approval_rule IN ('none', 'manager', 'group')", name="approval_rule"),
        UniqueConstraint("service_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("catalogue_services.id"), index=True)
    name: Mapped[str] = mapped_column(String(150))
    description: Mapped[str] = mapped_column(Text, default="")
    # {"fields": [{"key", "label", "type", "required", "help", "options"}]}: see
    # servicedesk.catalogue.formdef.
    form: Mapped[dict] = mapped_column(JSON, default=dict)
    approval_rule: Mapped[str] = mapped_column(String(16), default="none")
    approval_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"))
    fulfilment_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    service: Mapped[Service] = relationship(back_populates="offerings")
    approval_group: Mapped[Group | None] = relationship(foreign_keys=[approval_group_id])
    fulfilment_group: Mapped[Group | None] = relationship(foreign_keys=[fulfilment_group_id])

    __mapper_args__ = {"version_id_col": version}
