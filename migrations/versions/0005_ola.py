"""Operational level agreements: per-group targets and per-(ticket, group) OLA clocks

group_olas: one row of targets per group (resolution within the group, optional
response until someone of the group is assigned, calendar, pauses, warning %).
ola_clocks: derived per ticket, group and metric (recomputed from the ticket's history
on every change and by `servicedesk sla repair`), plus the two "told once" instants
the sweep sets with a conditional UPDATE; partial indexes serve the sweep's queries.
ola_group_changes: the group ids behind each `group` audit entry (the audit trail
shows names, which a rename would make ambiguous). Written from now on with every
group change; entries that already exist are filled in here by name, which is exact
today (groups have not been renamable before this revision).

Hand-written (SQLite and PostgreSQL): new tables only, nothing rebuilt.

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
    op.create_table('group_olas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('target_minutes', sa.Integer(), nullable=False),
    sa.Column('response_minutes', sa.Integer(), nullable=True),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('pause_statuses', sa.JSON(), nullable=False),
    sa.Column('warning_percent', sa.SmallInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('target_minutes > 0', name=op.f('ck_group_olas_target_minutes')),
    sa.CheckConstraint('response_minutes > 0', name=op.f('ck_group_olas_response_minutes')),
    sa.CheckConstraint('warning_percent BETWEEN 1 AND 99', name=op.f('ck_group_olas_warning_percent')),
    sa.ForeignKeyConstraint(['calendar_id'], ['sla_calendars.id'], name=op.f('fk_group_olas_calendar_id_sla_calendars')),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_olas_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_olas')),
    sa.UniqueConstraint('group_id', name=op.f('uq_group_olas_group_id'))
    )
    op.create_index(op.f('ix_group_olas_calendar_id'), 'group_olas', ['calendar_id'], unique=False)

    op.create_table('ola_clocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=16), nullable=False),
    sa.Column('target_seconds', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('paused_seconds', sa.Integer(), nullable=False),
    sa.Column('paused_since', sa.DateTime(), nullable=True),
    sa.Column('due_at', sa.DateTime(), nullable=True),
    sa.Column('warning_at', sa.DateTime(), nullable=True),
    sa.Column('met_at', sa.DateTime(), nullable=True),
    sa.Column('breached_at', sa.DateTime(), nullable=True),
    sa.Column('warning_notified_at', sa.DateTime(), nullable=True),
    sa.Column('breach_notified_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("metric IN ('response', 'resolution')", name=op.f('ck_ola_clocks_metric')),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_ola_clocks_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ola_clocks_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ola_clocks')),
    sa.UniqueConstraint('ticket_id', 'group_id', 'metric', name=op.f('uq_ola_clocks_ticket_id'))
    )
    op.create_index('ix_ola_clocks_due', 'ola_clocks', ['due_at'], unique=False,
                    sqlite_where=sa.text('met_at IS NULL AND breach_notified_at IS NULL'),
                    postgresql_where=sa.text('met_at IS NULL AND breach_notified_at IS NULL'))
    op.create_index('ix_ola_clocks_warning', 'ola_clocks', ['warning_at'], unique=False,
                    sqlite_where=sa.text('met_at IS NULL AND warning_notified_at IS NULL'),
                    postgresql_where=sa.text('met_at IS NULL AND warning_notified_at IS NULL'))
    op.create_index('ix_ola_clocks_breached', 'ola_clocks', ['breached_at'], unique=False,
                    sqlite_where=sa.text('breached_at IS NOT NULL AND breach_notified_at IS NULL'),
                    postgresql_where=sa.text('breached_at IS NOT NULL AND breach_notified_at IS NULL'))
    op.create_index('ix_ola_clocks_group_id', 'ola_clocks', ['group_id'], unique=False)

    op.create_table('ola_group_changes',
    sa.Column('audit_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('old_group_id', sa.Integer(), nullable=True),
    sa.Column('new_group_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['audit_id'], ['ticket_audit.id'], name=op.f('fk_ola_group_changes_audit_id_ticket_audit'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ola_group_changes_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('audit_id', name=op.f('pk_ola_group_changes'))
    )
    op.create_index('ix_ola_group_changes_ticket', 'ola_group_changes', ['ticket_id', 'audit_id'],
                    unique=False)
    # The group changes audited so far, by name (exact: no group was ever renamed yet).
    op.execute(
        "INSERT INTO ola_group_changes (audit_id, ticket_id, old_group_id, new_group_id) "
        "SELECT a.id, a.ticket_id, old_g.id, new_g.id FROM ticket_audit a "
        "LEFT JOIN groups old_g ON old_g.name = a.old_value "
        "LEFT JOIN groups new_g ON new_g.name = a.new_value "
        "WHERE a.field = 'group'"
    )


def downgrade():
    op.drop_index('ix_ola_group_changes_ticket', table_name='ola_group_changes')
    op.drop_table('ola_group_changes')
    op.drop_index('ix_ola_clocks_group_id', table_name='ola_clocks')
    op.drop_index('ix_ola_clocks_breached', table_name='ola_clocks')
    op.drop_index('ix_ola_clocks_warning', table_name='ola_clocks')
    op.drop_index('ix_ola_clocks_due', table_name='ola_clocks')
    op.drop_table('ola_clocks')
    op.drop_index(op.f('ix_group_olas_calendar_id'), table_name='group_olas')
    op.drop_table('group_olas')
