"""Users, groups (each in a support line), memberships and API tokens."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.types import UTCDateTime, utcnow

ROLES = ("requester", "agent", "manager", "admin")
STAFF_ROLES = frozenset({"agent", "manager", "admin"})
SUPPORT_LINES = (1, 2, 3)

group_members = db.Table(
    "group_members",
    db.Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    db.Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_group_members_user_id", "user_id"),
)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    display_name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    active: Mapped[bool] = mapped_column(default=True)
    role: Mapped[str] = mapped_column(String(16), default="requester")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    auth_source: Mapped[str] = mapped_column(String(16), default="local")
    # Bumped on deactivation and password change: every session cookie carries the
    # epoch it was issued under, and one from an older epoch no longer loads the user.
    session_epoch: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The person's working hours (an SLA calendar): escalation notifications to them
    # wait for these hours unless the step says otherwise; NULL: the policy's calendar.
    calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_calendars.id", ondelete="SET NULL"))
    # The person's line manager (set by the LDAP sync from the directory's manager DN),
    # so escalations can reach them; NULL: none known.
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True)

    groups: Mapped[list[Group]] = relationship(
        secondary=group_members, back_populates="members", order_by="Group.name"
    )
    manager: Mapped[User | None] = relationship(remote_side=[id], foreign_keys=[manager_id])

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return bool(self.active)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def name(self) -> str:
        return self.display_name or self.username

    def get_id(self) -> str:
        return f"{self.id}:{self.session_epoch}"

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class Group(db.Model):
    __tablename__ = "groups"
    __table_args__ = (CheckConstraint("support_line IN (1, 2, 3)", name="support_line"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    support_line: Mapped[int] = mapped_column(default=1)
    description: Mapped[str] = mapped_column(String(500), default="")
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(
        secondary=group_members, back_populates="groups", order_by="User.username"
    )
    manager: Mapped[User | None] = relationship(foreign_keys=[manager_id])

    def __repr__(self) -> str:
        return f"<Group {self.name} L{self.support_line}>"


class ApiToken(db.Model):
    """An API token. Only its SHA-256 is stored; the token is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class LoginFailure(db.Model):
    """One failed login, kept for the throttling window (shared by every web process)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
