"""SLA policy hook: tickets.sla_adjusted_by names the plugin that adjusted a ticket's SLA targets

A plain nullable ADD COLUMN (no constraint), so SQLite does not rebuild the tickets
table. NULL: the clocks run on the matched policy's own targets.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 21:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('tickets', sa.Column('sla_adjusted_by', sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('sla_adjusted_by')
