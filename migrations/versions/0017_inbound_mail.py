"""Inbound mail: processed messages and attachments

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-23 23:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    # Files kept with tickets; the bytes are on disk under storage_key.
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name=op.f("fk_attachments_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["comment_id"], ["ticket_comments.id"], ondelete="CASCADE",
                                name=op.f("fk_attachments_comment_id_ticket_comments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_attachments_storage_key")),
    )
    op.create_index("ix_attachments_ticket", "attachments", ["ticket_id", "id"])
    # Every inbound message once (unique Message-ID): idempotency and audit.
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("sender", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('processed', 'ignored', 'rejected', 'failed')",
                           name=op.f("ck_inbound_messages_status")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="SET NULL",
                                name=op.f("fk_inbound_messages_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_inbound_messages_message_id")),
    )
    op.create_index("ix_inbound_messages_received", "inbound_messages",
                    ["received_at", "id"])
    op.create_index("ix_inbound_messages_sender", "inbound_messages",
                    ["sender", "received_at"])


def downgrade():
    op.drop_index("ix_inbound_messages_sender", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_received", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_index("ix_attachments_ticket", table_name="attachments")
    op.drop_table("attachments")
