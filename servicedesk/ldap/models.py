"""Directory (LDAP / Active Directory) tables: the configuration, the directory identity
of synced users, the sync's lock and watermark, and the sync reports.

- ``ldap_config``: one row (id 1), edited by admins; ``version`` guards concurrent
  edits. The bind password is write-only: no schema ever dumps it.
- ``ldap_accounts``: one row per user that came from the directory, keyed by the
  directory's stable identifier (``entryUUID`` / ``objectGUID``), never by DN: a user
  moved or renamed keeps their row and their servicedesk user. ``dn_hash`` (SHA-256 of
  the normalised DN) finds the manager a ``manager`` DN names.
- ``ldap_sync_state``: one row (id 1). ``lock_token`` is the lock: a sync takes it
  with one conditional UPDATE (the loser sees 0 rows and reports "skipped"), keeps it
  fresh with ``heartbeat_at`` and clears it at the end; one left by a crashed run
  goes stale. It also holds the incremental watermark and when the schedule last ran.
- ``ldap_sync_reports`` and ``ldap_sync_items``: what each run did (or, dry, would
  do), with the DN and reason of every change and error.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.types import UTCDateTime, utcnow

FLAVOURS = ("openldap", "ad")
SECURITY_MODES = ("ldaps", "starttls", "plain")
REPORT_STATUSES = ("queued", "running", "ok", "aborted", "failed", "skipped")
REPORT_ACTIONS = ("created", "updated", "deactivated", "reactivated", "error")
TRIGGERS = ("cli", "web", "api", "schedule")


class LdapConfig(db.Model):
    __tablename__ = "ldap_config"

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    flavour: Mapped[str] = mapped_column(String(16), default="openldap")
    server_uris: Mapped[list] = mapped_column(JSON, default=list)
    security: Mapped[str] = mapped_column(String(16), default="starttls")
    ca_file: Mapped[str] = mapped_column(String(1000), default="")
    # False only by an admin's explicit choice (test directories); logged on every use.
    tls_verify: Mapped[bool] = mapped_column(default=True)
    timeout_seconds: Mapped[int] = mapped_column(default=10)
    bind_dn: Mapped[str] = mapped_column(String(1000), default="")
    bind_password: Mapped[str] = mapped_column(String(1000), default="")
    user_base_dn: Mapped[str] = mapped_column(String(1000), default="")
    user_filter: Mapped[str] = mapped_column(String(2000), default="")
    disabled_filter: Mapped[str] = mapped_column(String(2000), default="")
    group_base_dn: Mapped[str] = mapped_column(String(1000), default="")
    group_filter: Mapped[str] = mapped_column(String(2000), default="")
    group_member_attribute: Mapped[str] = mapped_column(String(64), default="member")
    id_attribute: Mapped[str] = mapped_column(String(64), default="entryUUID")
    change_attribute: Mapped[str] = mapped_column(String(64), default="modifyTimestamp")
    # {"username": "uid", "email": "mail", "display_name": ..., "phone", "department",
    #  "title", "manager"}
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    # [{"ldap_group": DN, "group": servicedesk group name or "", "role": role or ""}]
    group_mappings: Mapped[list] = mapped_column(JSON, default=list)
    default_role: Mapped[str] = mapped_column(String(16), default="requester")
    page_size: Mapped[int] = mapped_column(default=500)
    sync_interval_minutes: Mapped[int] = mapped_column(default=0)
    max_deactivate_percent: Mapped[int] = mapped_column(default=10)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(default=1)


class LdapAccount(db.Model):
    __tablename__ = "ldap_accounts"
    __table_args__ = (Index("ix_ldap_accounts_dn_hash", "dn_hash"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    directory_id: Mapped[str] = mapped_column(String(64), unique=True)
    dn: Mapped[str] = mapped_column(Text)
    dn_hash: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(100), default="")
    department: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    manager_dn: Mapped[str] = mapped_column(Text, default="")
    # Why the sync deactivated the user ("missing" | "disabled"); NULL: it did not (a
    # user an admin deactivated by hand is never reactivated by the sync).
    deactivated_reason: Mapped[str | None] = mapped_column(String(16))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LdapSyncState(db.Model):
    __tablename__ = "ldap_sync_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    lock_token: Mapped[str | None] = mapped_column(String(64))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Incremental sync: the highest change marker seen (modifyTimestamp / uSNChanged),
    # which server it came from and under which configuration version.
    watermark: Mapped[str | None] = mapped_column(String(64))
    watermark_server: Mapped[str | None] = mapped_column(String(1000))
    watermark_config_version: Mapped[int | None] = mapped_column()
    last_full_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LdapSyncReport(db.Model):
    __tablename__ = "ldap_sync_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    trigger: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    dry_run: Mapped[bool] = mapped_column(default=False)
    full_requested: Mapped[bool] = mapped_column(default=False)
    allow_mass_deactivation: Mapped[bool] = mapped_column(default=False)
    mode: Mapped[str] = mapped_column(String(16), default="")
    server: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    directory_users: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    deactivated: Mapped[int] = mapped_column(default=0)
    reactivated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")

    actor: Mapped[User | None] = relationship()


class LdapSyncItem(db.Model):
    __tablename__ = "ldap_sync_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("ldap_sync_reports.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    dn: Mapped[str] = mapped_column(Text, default="")
    username: Mapped[str] = mapped_column(String(150), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
