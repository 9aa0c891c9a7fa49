"""Indexes for reports; business time of stopped SLA clocks

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-23 23:20:00.000000

``sla_clocks.elapsed_seconds``: the business seconds a clock ran until it stopped, so
reports take medians of response and resolution time in business hours in the
database. Clocks that stopped before this revision get it from ``servicedesk sla
fill-elapsed``; until then reports leave them out.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

ESCALATED = "action = 'escalated' AND field = 'support_line'"


def upgrade():
    with op.batch_alter_table('sla_clocks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('elapsed_seconds', sa.Integer(), nullable=True))
    op.create_index('ix_tickets_kind_created', 'tickets', ['kind', 'created_at'], unique=False)
    op.create_index('ix_tickets_resolved_at', 'tickets', ['resolved_at'], unique=False)
    op.create_index('ix_tickets_closed_at', 'tickets', ['closed_at'], unique=False)
    op.create_index('ix_ticket_audit_escalated', 'ticket_audit', ['ticket_id', 'old_value'],
                    unique=False, sqlite_where=sa.text(ESCALATED),
                    postgresql_where=sa.text(ESCALATED))
    # The report's lookup of a ticket's clock, index-only (INCLUDE: PostgreSQL only).
    op.create_index('ix_sla_clocks_report', 'sla_clocks', ['ticket_id', 'metric'], unique=False,
                    postgresql_include=['met_at', 'breached_at', 'elapsed_seconds'])


def downgrade():
    op.drop_index('ix_sla_clocks_report', table_name='sla_clocks')
    op.drop_index('ix_ticket_audit_escalated', table_name='ticket_audit')
    op.drop_index('ix_tickets_closed_at', table_name='tickets')
    op.drop_index('ix_tickets_resolved_at', table_name='tickets')
    op.drop_index('ix_tickets_kind_created', table_name='tickets')
    with op.batch_alter_table('sla_clocks', schema=None) as batch_op:
        batch_op.drop_column('elapsed_seconds')
