"""Plugin administration: enabled state, settings and install records per plugin

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 22:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # One row per plugin an admin touched or ``servicedesk plugins install`` recorded.
    # No row means "enabled, default settings": plugins already installed keep working.
    op.create_table(
        "plugins",
        sa.Column("name", sa.String(length=100), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("package", sa.String(length=300), nullable=True),
        sa.Column("installed_by", sa.String(length=150), nullable=True),
        sa.Column("installed_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade():
    op.drop_table("plugins")
