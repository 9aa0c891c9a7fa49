"""Satisfaction surveys: one per resolution, signed single-use links, ratings

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 22:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    # One row per resolution; the link's token is stored only as its SHA-256.
    op.create_table(
        "csat_surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(),
                  nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("reopened", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5",
                           name=op.f("ck_csat_surveys_rating")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name=op.f("fk_csat_surveys_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csat_surveys")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_csat_surveys_token_hash")),
    )
    op.create_index("ix_csat_surveys_ticket", "csat_surveys", ["ticket_id", "id"])
    op.create_index("ix_csat_surveys_resolved", "csat_surveys", ["resolved_at"])


def downgrade():
    op.drop_index("ix_csat_surveys_resolved", table_name="csat_surveys")
    op.drop_index("ix_csat_surveys_ticket", table_name="csat_surveys")
    op.drop_table("csat_surveys")
