"""Reports read each ticket's SLA outcome from its own row

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-24 00:20:00.000000

``tickets.sla_<metric>_breached`` / ``sla_<metric>_business_seconds``: the outcome of
the ticket's stopped clock (NULL while it runs or without one), written by
``sla.service.refresh_clocks`` beside ``sla_clocks`` so the KPI report reads one row
per ticket instead of joining a year of tickets to their clocks. Filled here from
``sla_clocks`` with one UPDATE (correlated subqueries: both back ends).

On PostgreSQL ``ix_tickets_resolved_at`` INCLUDEs the columns the resolved cohort
reads, so the report's pass over it is an index-only scan; ``ix_sla_clocks_report``
(0018's clock lookup per cohort ticket) has no reader any more and goes.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

METRICS = ('response', 'resolution')
# What the resolved cohort reads (reports/kpis.py) and filters on most (kind, group,
# category, the visibility of managers), so its scan never visits the table.
COHORT_INCLUDE = [
    'id', 'kind', 'group_id', 'category_id', 'requester_id', 'assignee_id', 'support_line',
    'reopen_count', 'escalation_count',
    'sla_response_breached', 'sla_response_business_seconds',
    'sla_resolution_breached', 'sla_resolution_business_seconds',
]


def _backfill() -> str:
    """Every ticket with a stopped clock gets that clock's outcome (one statement,
    correlated subqueries: both back ends; tests/test_reports.py runs it)."""
    sets = []
    for metric in METRICS:
        clock = (f"FROM sla_clocks AS c WHERE c.ticket_id = tickets.id "
                 f"AND c.metric = '{metric}' AND c.met_at IS NOT NULL")
        sets.append(f"sla_{metric}_breached = (SELECT c.breached_at IS NOT NULL {clock})")
        sets.append(f"sla_{metric}_business_seconds = (SELECT c.elapsed_seconds {clock})")
    return (f"UPDATE tickets SET {', '.join(sets)} WHERE EXISTS (SELECT 1 FROM sla_clocks "
            "AS s WHERE s.ticket_id = tickets.id AND s.met_at IS NOT NULL)")


BACKFILL = _backfill()


def upgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        for metric in METRICS:
            batch_op.add_column(sa.Column(f'sla_{metric}_breached', sa.Boolean(),
                                          nullable=True))
            batch_op.add_column(sa.Column(f'sla_{metric}_business_seconds', sa.Integer(),
                                          nullable=True))
    op.execute(BACKFILL)
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_tickets_resolved_at', table_name='tickets')
        op.create_index('ix_tickets_resolved_at', 'tickets', ['resolved_at'], unique=False,
                        postgresql_include=COHORT_INCLUDE)
    op.drop_index('ix_sla_clocks_report', table_name='sla_clocks')


def downgrade():
    op.create_index('ix_sla_clocks_report', 'sla_clocks', ['ticket_id', 'metric'], unique=False,
                    postgresql_include=['met_at', 'breached_at', 'elapsed_seconds'])
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_tickets_resolved_at', table_name='tickets')
        op.create_index('ix_tickets_resolved_at', 'tickets', ['resolved_at'], unique=False)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        for metric in reversed(METRICS):
            batch_op.drop_column(f'sla_{metric}_business_seconds')
            batch_op.drop_column(f'sla_{metric}_breached')
