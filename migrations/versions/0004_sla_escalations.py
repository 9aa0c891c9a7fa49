"""SLA escalation steps: one row per fired (ticket, metric, step); next step instant on clocks; users' working-hours calendar

* ``sla_escalations``: one row per fired step (or clock warning / breach event),
  unique per (ticket, metric, step_key): the row that makes firing exactly-once.
* ``sla_clocks.next_step_at`` with the partial index ``ix_sla_clocks_next_step``
  (next_step_at, id WHERE next_step_at IS NOT NULL): what the sweep reads. Existing
  clocks start with NULL; ``servicedesk sla repair`` fills it in (docs/operations.md).
* ``users.calendar_id``: a person's working hours (nullable, ON DELETE SET NULL).

Hand-written. On SQLite the foreign key of ``users.calendar_id`` is declared in the
ADD COLUMN itself (SQLite cannot add a constraint to an existing table, and a batch
rebuild of ``users`` would copy the table every other table refers to); PostgreSQL
gets a plain ADD COLUMN plus ADD CONSTRAINT with the same name.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 20:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

USERS_CALENDAR_FK = 'fk_users_calendar_id_sla_calendars'


def upgrade():
    op.create_table('sla_escalations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('step_key', sa.String(length=48), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('fired_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['policy_id'], ['sla_policies.id'], name=op.f('fk_sla_escalations_policy_id_sla_policies')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_sla_escalations_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_escalations')),
    sa.UniqueConstraint('ticket_id', 'metric', 'step_key', name=op.f('uq_sla_escalations_ticket_id'))
    )

    # Plain ADD COLUMN (no constraint): SQLite does not rebuild sla_clocks.
    op.add_column('sla_clocks', sa.Column('next_step_at', sa.DateTime(), nullable=True))
    op.create_index('ix_sla_clocks_next_step', 'sla_clocks', ['next_step_at', 'id'], unique=False,
                    sqlite_where=sa.text('next_step_at IS NOT NULL'),
                    postgresql_where=sa.text('next_step_at IS NOT NULL'))

    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f'ALTER TABLE users ADD COLUMN calendar_id INTEGER CONSTRAINT {USERS_CALENDAR_FK} '
                   'REFERENCES sla_calendars (id) ON DELETE SET NULL')
    else:
        op.add_column('users', sa.Column('calendar_id', sa.Integer(), nullable=True))
        op.create_foreign_key(USERS_CALENDAR_FK, 'users', 'sla_calendars', ['calendar_id'], ['id'],
                              ondelete='SET NULL')


def downgrade():
    op.drop_index('ix_sla_clocks_next_step', table_name='sla_clocks')
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite's own DROP COLUMN (3.35+): no batch rebuild of users, which every
        # other table refers to (a rebuild's DROP TABLE would cascade to them).
        op.execute('ALTER TABLE users DROP COLUMN calendar_id')
        op.execute('ALTER TABLE sla_clocks DROP COLUMN next_step_at')
    else:
        op.drop_constraint(USERS_CALENDAR_FK, 'users', type_='foreignkey')
        op.drop_column('users', 'calendar_id')
        op.drop_column('sla_clocks', 'next_step_at')
    op.drop_table('sla_escalations')
