"""Notification outbox: one row per message to deliver, written in the same transaction as the change that caused it (owner: notify)

``ix_notifications_due`` is partial (status = 'pending'): "what is due" is one range
scan over pending rows only, however many sent rows accumulate. A worker's claim moves
``next_attempt_at`` a lease ahead, so the same index also finds rows whose worker died
mid-send once their lease runs out. ``ix_notifications_failed`` (partial too) serves
the admins' list of failed deliveries. There is deliberately no index on (status, id):
without statistics SQLite's planner would prefer its equality to the due index's range.

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
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('recipient_id', sa.Integer(), nullable=True),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('deliver_after', sa.DateTime(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')",
                       name=op.f('ck_notifications_status')),
    sa.ForeignKeyConstraint(['recipient_id'], ['users.id'],
                            name=op.f('fk_notifications_recipient_id_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                            name=op.f('fk_notifications_ticket_id_tickets'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_notifications_dedupe_key'))
    )
    op.create_index('ix_notifications_due', 'notifications', ['next_attempt_at', 'id'],
                    unique=False, sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_notifications_failed', 'notifications', ['id'], unique=False,
                    sqlite_where=sa.text("status = 'failed'"),
                    postgresql_where=sa.text("status = 'failed'"))
    op.create_index('ix_notifications_ticket', 'notifications', ['ticket_id'], unique=False)


def downgrade():
    op.drop_index('ix_notifications_ticket', table_name='notifications')
    op.drop_index('ix_notifications_failed', table_name='notifications',
                  sqlite_where=sa.text("status = 'failed'"),
                  postgresql_where=sa.text("status = 'failed'"))
    op.drop_index('ix_notifications_due', table_name='notifications',
                  sqlite_where=sa.text("status = 'pending'"),
                  postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('notifications')
