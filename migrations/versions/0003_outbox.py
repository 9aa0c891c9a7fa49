"""Notification outbox: one row per message to deliver, written in the same transaction as the change that caused it (owner: notify)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
