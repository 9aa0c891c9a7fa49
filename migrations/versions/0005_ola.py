"""Operational level agreements: per-group targets and per-(ticket, group) OLA clocks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 20:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
