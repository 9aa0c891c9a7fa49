"""SLA: calendars, policies, per-ticket clocks; ticket SLA columns

Business-hours calendars and SLA policies (admin data, none seeded: `servicedesk demo`
seeds a default set), one clock row per ticket and metric (derived from the ticket's
history; `servicedesk sla repair` rebuilds them), and on tickets: the matched policy,
the earliest unmet due instant and the escalation level.

tickets.sla_policy_id has no foreign key on purpose: adding one would make SQLite
rebuild (copy) the whole tickets table; policies are never deleted.
ix_tickets_sla_due is an expression index (COALESCE(sla_due_at, far future)): the
"breaches next" sort key, see servicedesk.tickets.models.SLA_NEVER. Autogenerate
cannot compare expression indexes (SQLite does not reflect them and warns; PostgreSQL's
normalised text never equals SQLAlchemy's), so migrations/env.py leaves it out of the
comparison: a change to it needs a hand-written revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:50:48.281824

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# Must stay textually identical to servicedesk.tickets.models._SLA_NEVER_SQL.
SLA_DUE_RANK = "coalesce(sla_due_at, '9999-12-31 00:00:00.000000')"


def upgrade():
    op.create_table('sla_calendars',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('week', sa.JSON(), nullable=False),
    sa.Column('holidays', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_calendars')),
    sa.UniqueConstraint('name', name=op.f('uq_sla_calendars_name'))
    )
    op.create_table('sla_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=False),
    sa.Column('priorities', sa.JSON(), nullable=False),
    sa.Column('service_ids', sa.JSON(), nullable=False),
    sa.Column('category_ids', sa.JSON(), nullable=False),
    sa.Column('response_minutes', sa.Integer(), nullable=True),
    sa.Column('resolution_minutes', sa.Integer(), nullable=True),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('pause_statuses', sa.JSON(), nullable=False),
    sa.Column('warning_percent', sa.SmallInteger(), nullable=False),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('resolution_minutes > 0', name=op.f('ck_sla_policies_resolution_minutes')),
    sa.CheckConstraint('response_minutes > 0', name=op.f('ck_sla_policies_response_minutes')),
    sa.CheckConstraint('warning_percent BETWEEN 1 AND 99', name=op.f('ck_sla_policies_warning_percent')),
    sa.ForeignKeyConstraint(['calendar_id'], ['sla_calendars.id'], name=op.f('fk_sla_policies_calendar_id_sla_calendars')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_sla_policies_name'))
    )
    op.create_index(op.f('ix_sla_policies_calendar_id'), 'sla_policies', ['calendar_id'], unique=False)

    op.create_table('sla_clocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=16), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=False),
    sa.Column('target_seconds', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('paused_seconds', sa.Integer(), nullable=False),
    sa.Column('paused_since', sa.DateTime(), nullable=True),
    sa.Column('due_at', sa.DateTime(), nullable=True),
    sa.Column('warning_at', sa.DateTime(), nullable=True),
    sa.Column('met_at', sa.DateTime(), nullable=True),
    sa.Column('breached_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("metric IN ('response', 'resolution')", name=op.f('ck_sla_clocks_metric')),
    sa.ForeignKeyConstraint(['policy_id'], ['sla_policies.id'], name=op.f('fk_sla_clocks_policy_id_sla_policies')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_sla_clocks_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_clocks')),
    sa.UniqueConstraint('ticket_id', 'metric', name=op.f('uq_sla_clocks_ticket_id'))
    )
    op.create_index('ix_sla_clocks_due', 'sla_clocks', ['due_at'], unique=False,
                    sqlite_where=sa.text('met_at IS NULL'), postgresql_where=sa.text('met_at IS NULL'))
    op.create_index(op.f('ix_sla_clocks_policy_id'), 'sla_clocks', ['policy_id'], unique=False)
    op.create_index('ix_sla_clocks_warning', 'sla_clocks', ['warning_at'], unique=False,
                    sqlite_where=sa.text('met_at IS NULL'), postgresql_where=sa.text('met_at IS NULL'))

    # Plain ADD COLUMNs (no constraint), so SQLite does not rebuild the tickets table.
    op.add_column('tickets', sa.Column('sla_policy_id', sa.Integer(), nullable=True))
    op.add_column('tickets', sa.Column('sla_due_at', sa.DateTime(), nullable=True))
    op.add_column('tickets', sa.Column('escalation_level', sa.SmallInteger(),
                                       server_default=sa.text('0'), nullable=False))
    op.create_index('ix_tickets_sla_due', 'tickets',
                    [sa.text(SLA_DUE_RANK), 'priority', 'created_at', 'id'], unique=False,
                    sqlite_where=sa.text('is_open = 1'), postgresql_where=sa.text('is_open'))


def downgrade():
    op.drop_index('ix_tickets_sla_due', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('escalation_level')
        batch_op.drop_column('sla_due_at')
        batch_op.drop_column('sla_policy_id')

    op.drop_index('ix_sla_clocks_warning', table_name='sla_clocks')
    op.drop_index(op.f('ix_sla_clocks_policy_id'), table_name='sla_clocks')
    op.drop_index('ix_sla_clocks_due', table_name='sla_clocks')
    op.drop_table('sla_clocks')
    op.drop_index(op.f('ix_sla_policies_calendar_id'), table_name='sla_policies')
    op.drop_table('sla_policies')
    op.drop_table('sla_calendars')
