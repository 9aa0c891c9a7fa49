"""Approvals on any ticket (approvers, rules, decisions)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 23:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("rule", sa.String(length=8), nullable=False),
        sa.Column("quorum", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("escalated_at", sa.DateTime(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("rule IN ('any', 'all', 'quorum')", name=op.f("ck_approvals_rule")),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'cancelled')",
                           name=op.f("ck_approvals_status")),
        sa.CheckConstraint("quorum IS NULL OR quorum >= 1", name=op.f("ck_approvals_quorum")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name=op.f("fk_approvals_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"],
                                name=op.f("fk_approvals_requested_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    op.create_index("ix_approvals_ticket", "approvals", ["ticket_id", "id"])
    op.create_index("ix_approvals_overdue", "approvals", ["due_at"],
                    sqlite_where=sa.text("status = 'pending' AND escalated_at IS NULL"),
                    postgresql_where=sa.text("status = 'pending' AND escalated_at IS NULL"))
    op.create_table(
        "approval_approvers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("approval_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)",
                           name=op.f("ck_approval_approvers_one_approver")),
        sa.ForeignKeyConstraint(["approval_id"], ["approvals.id"], ondelete="CASCADE",
                                name=op.f("fk_approval_approvers_approval_id_approvals")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_approval_approvers_user_id_users")),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"],
                                name=op.f("fk_approval_approvers_group_id_groups")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_approvers")),
    )
    op.create_index("ix_approval_approvers_approval", "approval_approvers",
                    ["approval_id", "id"])
    op.create_index("ix_approval_approvers_user", "approval_approvers",
                    ["user_id", "approval_id"])
    op.create_index("ix_approval_approvers_group", "approval_approvers",
                    ["group_id", "approval_id"])
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("approval_id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("decision IN ('approve', 'reject')",
                           name=op.f("ck_approval_decisions_decision")),
        sa.ForeignKeyConstraint(["approval_id"], ["approvals.id"], ondelete="CASCADE",
                                name=op.f("fk_approval_decisions_approval_id_approvals")),
        sa.ForeignKeyConstraint(["slot_id"], ["approval_approvers.id"], ondelete="CASCADE",
                                name=op.f("fk_approval_decisions_slot_id_approval_approvers")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_approval_decisions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_decisions")),
        sa.UniqueConstraint("approval_id", "user_id",
                            name=op.f("uq_approval_decisions_approval_id")),
        sa.UniqueConstraint("slot_id", name=op.f("uq_approval_decisions_slot_id")),
    )


def downgrade():
    op.drop_table("approval_decisions")
    op.drop_index("ix_approval_approvers_group", table_name="approval_approvers")
    op.drop_index("ix_approval_approvers_user", table_name="approval_approvers")
    op.drop_index("ix_approval_approvers_approval", table_name="approval_approvers")
    op.drop_table("approval_approvers")
    op.drop_index("ix_approvals_overdue", table_name="approvals")
    op.drop_index("ix_approvals_ticket", table_name="approvals")
    op.drop_table("approvals")
