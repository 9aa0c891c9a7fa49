"""Tables of the CMDB: CI classes, configuration items, relations and CI history.

Relations are stored as the user states them (``source`` *type* ``target``: "payroll
app runs on srv-01") and, next to that, in dependency terms: ``dependent_id`` needs
``dependency_id``. For every type but ``part_of`` the source is the dependent; for
``part_of`` it is the other way round (the whole needs its parts: "payroll-db part of
Payroll service" means the service is impacted when the database fails). Impact
analysis walks only the dependency columns, each direction with its own index, so it
never needs a CASE per row; a CHECK constraint keeps the two spellings in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import Group, User
from servicedesk.types import UTCDateTime, utcnow


def N_(message: str) -> str:
    """Mark ``message`` for extraction only; it is translated where it is shown."""
    return message


STATUSES = ("planned", "in_use", "maintenance", "retired")
STATUS_LABELS = {"planned": N_("Planned"), "in_use": N_("In use"),
                 "maintenance": N_("Maintenance"), "retired": N_("Retired")}
SERVICE_TYPES = ("business", "technical")


@dataclass(frozen=True)
class RelationType:
    key: str
    name: str          # "A <name> B"
    inverse: str       # "B <inverse> A"
    source_depends: bool  # True: the source needs the target


RELATION_TYPES = {
    t.key: t for t in (
        RelationType("depends_on", N_("depends on"), N_("is needed by"), True),
        RelationType("runs_on", N_("runs on"), N_("runs"), True),
        RelationType("hosted_on", N_("hosted on"), N_("hosts"), True),
        RelationType("connects_to", N_("connects to"), N_("is connected from"), True),
        RelationType("part_of", N_("part of"), N_("has part"), False),
    )
}
# Types whose *target* is the dependent (kept in the CHECK constraint below and in
# migration 0007).
REVERSED_TYPES = tuple(k for k, t in RELATION_TYPES.items() if not t.source_depends)


class CIClass(db.Model):
    """A kind of configuration item and the attributes its CIs carry.

    ``attributes`` holds this class's own attribute definitions (a list of dicts, see
    cmdb.attributes); a class also has every attribute of its ancestors. ``source`` is
    ``admin`` (made through the API), ``seed`` (installed with servicedesk) or
    ``plugin`` (defined by the ``servicedesk_ci_classes`` hook; not editable here).
    """

    __tablename__ = "cmdb_classes"
    __table_args__ = (
        CheckConstraint("service_type IN ('business', 'technical')", name="service_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cmdb_classes.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # "business" / "technical": CIs of this class (and its subclasses) are services.
    service_type: Mapped[str | None] = mapped_column(String(16))
    attributes: Mapped[list] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    parent: Mapped[CIClass | None] = relationship(remote_side=[id])

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<CIClass {self.key}>"


class ConfigurationItem(db.Model):
    """One thing IT manages: a service, an application, a server, a room..."""

    __tablename__ = "cmdb_cis"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        Index("ix_cmdb_cis_name", "name", "id"),
        Index("ix_cmdb_cis_class", "class_id", "name", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    class_id: Mapped[int] = mapped_column(ForeignKey("cmdb_classes.id"))
    status: Mapped[str] = mapped_column(String(16), default="in_use")
    owner_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    # The key of the system it was imported from: imports match rows by it.
    external_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    ci_class: Mapped[CIClass] = relationship()
    owner_group: Mapped[Group | None] = relationship()

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<CI {self.id} {self.name}>"


class Relation(db.Model):
    """``source`` *type* ``target``, plus who needs whom (see the module docstring)."""

    __tablename__ = "cmdb_relations"
    __table_args__ = (
        UniqueConstraint("source_id", "target_id", "type",
                         name="uq_cmdb_relations_source_target_type"),
        CheckConstraint("source_id <> target_id", name="not_self"),
        CheckConstraint(f"type IN {tuple(RELATION_TYPES)!r}", name="type"),
        CheckConstraint(
            "(type IN ('part_of') AND dependent_id = target_id AND dependency_id = source_id)"
            " OR (type NOT IN ('part_of') AND dependent_id = source_id"
            " AND dependency_id = target_id)",
            name="direction"),
        # Downstream impact: who needs X (dependency_id = X); upstream: what X needs.
        Index("ix_cmdb_relations_dependency", "dependency_id", "dependent_id"),
        Index("ix_cmdb_relations_dependent", "dependent_id", "dependency_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("cmdb_cis.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("cmdb_cis.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    dependent_id: Mapped[int] = mapped_column()
    dependency_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    source: Mapped[ConfigurationItem] = relationship(foreign_keys=[source_id])
    target: Mapped[ConfigurationItem] = relationship(foreign_keys=[target_id])

    @staticmethod
    def dependency_pair(source_id: int, target_id: int, type_: str) -> tuple[int, int]:
        """(dependent, dependency) of ``source type target``."""
        if RELATION_TYPES[type_].source_depends:
            return source_id, target_id
        return target_id, source_id


assert REVERSED_TYPES == ("part_of",), "update the direction CHECK and migration 0007"


class CIHistory(db.Model):
    """One change to a CI (or its relations): who, when, what, from, to."""

    __tablename__ = "cmdb_ci_history"
    __table_args__ = (Index("ix_cmdb_ci_history_ci", "ci_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ci_id: Mapped[int] = mapped_column(ForeignKey("cmdb_cis.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(120))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)

    actor: Mapped[User | None] = relationship()
