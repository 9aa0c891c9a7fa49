"""LDAP / Active Directory: directory configuration, sync reports, directory identity of users

* ``ldap_config`` (one row, admins' settings; the bind password is never dumped),
  ``ldap_accounts`` (a synced user's directory id: entryUUID / objectGUID, DN, profile
  attributes, why the sync deactivated them), ``ldap_sync_state`` (the sync's lock
  row and incremental watermark), ``ldap_sync_reports`` and ``ldap_sync_items``.
* ``users.manager_id``: a person's manager (from the directory's manager DN), nullable,
  ON DELETE SET NULL, indexed.

Hand-written. On SQLite the foreign key of ``users.manager_id`` is declared in the ADD
COLUMN itself (SQLite cannot add a constraint to an existing table, and a batch rebuild
of ``users`` would copy the table every other table refers to); PostgreSQL gets a plain
ADD COLUMN plus ADD CONSTRAINT with the same name.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 20:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

USERS_MANAGER_FK = 'fk_users_manager_id_users'


def upgrade():
    op.create_table('ldap_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('flavour', sa.String(length=16), nullable=False),
    sa.Column('server_uris', sa.JSON(), nullable=False),
    sa.Column('security', sa.String(length=16), nullable=False),
    sa.Column('ca_file', sa.String(length=1000), nullable=False),
    sa.Column('tls_verify', sa.Boolean(), nullable=False),
    sa.Column('timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('bind_dn', sa.String(length=1000), nullable=False),
    sa.Column('bind_password', sa.String(length=1000), nullable=False),
    sa.Column('user_base_dn', sa.String(length=1000), nullable=False),
    sa.Column('user_filter', sa.String(length=2000), nullable=False),
    sa.Column('disabled_filter', sa.String(length=2000), nullable=False),
    sa.Column('group_base_dn', sa.String(length=1000), nullable=False),
    sa.Column('group_filter', sa.String(length=2000), nullable=False),
    sa.Column('group_member_attribute', sa.String(length=64), nullable=False),
    sa.Column('id_attribute', sa.String(length=64), nullable=False),
    sa.Column('change_attribute', sa.String(length=64), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('group_mappings', sa.JSON(), nullable=False),
    sa.Column('default_role', sa.String(length=16), nullable=False),
    sa.Column('page_size', sa.Integer(), nullable=False),
    sa.Column('sync_interval_minutes', sa.Integer(), nullable=False),
    sa.Column('max_deactivate_percent', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_ldap_config_updated_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ldap_config'))
    )
    op.create_table('ldap_accounts',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('directory_id', sa.String(length=64), nullable=False),
    sa.Column('dn', sa.Text(), nullable=False),
    sa.Column('dn_hash', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=100), nullable=False),
    sa.Column('department', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('manager_dn', sa.Text(), nullable=False),
    sa.Column('deactivated_reason', sa.String(length=16), nullable=True),
    sa.Column('synced_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ldap_accounts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_ldap_accounts')),
    sa.UniqueConstraint('directory_id', name=op.f('uq_ldap_accounts_directory_id'))
    )
    op.create_index('ix_ldap_accounts_dn_hash', 'ldap_accounts', ['dn_hash'], unique=False)
    op.create_table('ldap_sync_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lock_token', sa.String(length=64), nullable=True),
    sa.Column('locked_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('watermark', sa.String(length=64), nullable=True),
    sa.Column('watermark_server', sa.String(length=1000), nullable=True),
    sa.Column('watermark_config_version', sa.Integer(), nullable=True),
    sa.Column('last_full_at', sa.DateTime(), nullable=True),
    sa.Column('last_scheduled_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ldap_sync_state'))
    )
    op.create_table('ldap_sync_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('full_requested', sa.Boolean(), nullable=False),
    sa.Column('allow_mass_deactivation', sa.Boolean(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('server', sa.String(length=1000), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('directory_users', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('deactivated', sa.Integer(), nullable=False),
    sa.Column('reactivated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_ldap_sync_reports_actor_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ldap_sync_reports'))
    )
    op.create_index(op.f('ix_ldap_sync_reports_created_at'), 'ldap_sync_reports', ['created_at'], unique=False)
    op.create_table('ldap_sync_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('dn', sa.Text(), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['ldap_sync_reports.id'], name=op.f('fk_ldap_sync_items_report_id_ldap_sync_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ldap_sync_items'))
    )
    op.create_index(op.f('ix_ldap_sync_items_report_id'), 'ldap_sync_items', ['report_id'], unique=False)

    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f'ALTER TABLE users ADD COLUMN manager_id INTEGER CONSTRAINT {USERS_MANAGER_FK} '
                   'REFERENCES users (id) ON DELETE SET NULL')
    else:
        op.add_column('users', sa.Column('manager_id', sa.Integer(), nullable=True))
        op.create_foreign_key(USERS_MANAGER_FK, 'users', 'users', ['manager_id'], ['id'],
                              ondelete='SET NULL')
    op.create_index(op.f('ix_users_manager_id'), 'users', ['manager_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_users_manager_id'), table_name='users')
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite's own DROP COLUMN (3.35+): no batch rebuild of users, which every
        # other table refers to (a rebuild's DROP TABLE would cascade to them).
        op.execute('ALTER TABLE users DROP COLUMN manager_id')
    else:
        op.drop_constraint(USERS_MANAGER_FK, 'users', type_='foreignkey')
        op.drop_column('users', 'manager_id')
    op.drop_index(op.f('ix_ldap_sync_items_report_id'), table_name='ldap_sync_items')
    op.drop_table('ldap_sync_items')
    op.drop_index(op.f('ix_ldap_sync_reports_created_at'), table_name='ldap_sync_reports')
    op.drop_table('ldap_sync_reports')
    op.drop_table('ldap_sync_state')
    op.drop_index('ix_ldap_accounts_dn_hash', table_name='ldap_accounts')
    op.drop_table('ldap_accounts')
    op.drop_table('ldap_config')
