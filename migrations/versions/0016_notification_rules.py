"""Notification rules as data and users' channel preferences

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-23 23:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


# (event, recipient kind, backend, enabled, mutable, include actor): who is told what
# on a fresh install. Admins change them at /admin/notification-rules.
DEFAULT_RULES = [
    ("ticket.created", "requester", "email", True, False, True),  # the confirmation
    ("ticket.created", "group", "email", False, True, False),
    ("ticket.assigned", "assignee", "email", True, True, False),
    ("ticket.commented", "requester", "email", True, True, False),
    ("ticket.commented", "assignee", "email", True, True, False),
    ("ticket.commented", "watchers", "email", True, True, False),
    ("ticket.resolved", "requester", "email", True, True, False),
    ("ticket.resolved", "watchers", "email", True, True, False),
    ("ticket.closed", "requester", "email", False, True, False),
    ("ticket.reopened", "assignee", "email", True, True, False),
    ("ticket.transitioned", "watchers", "email", False, True, False),
    ("approval_requested", "approver", "email", True, False, False),
]


def upgrade():
    rules = op.create_table(
        "notification_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("recipient_kind", sa.String(length=32), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("mutable", sa.Boolean(), nullable=False),
        sa.Column("include_actor", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_rules")),
        sa.UniqueConstraint("event", "recipient_kind", "backend",
                            name=op.f("uq_notification_rules_event")),
    )
    op.bulk_insert(rules, [
        {"event": event, "recipient_kind": kind, "backend": backend, "enabled": enabled,
         "mutable": mutable, "include_actor": include_actor, "version": 1}
        for event, kind, backend, enabled, mutable, include_actor in DEFAULT_RULES
    ])
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_notification_preferences_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", "event", "backend",
                                name=op.f("pk_notification_preferences")),
    )
    op.create_table(
        "ticket_watchers",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name=op.f("fk_ticket_watchers_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_ticket_watchers_user_id_users")),
        sa.PrimaryKeyConstraint("ticket_id", "user_id", name=op.f("pk_ticket_watchers")),
    )
    op.create_index("ix_ticket_watchers_user_id", "ticket_watchers", ["user_id"])


def downgrade():
    op.drop_index("ix_ticket_watchers_user_id", table_name="ticket_watchers")
    op.drop_table("ticket_watchers")
    op.drop_table("notification_preferences")
    op.drop_table("notification_rules")
