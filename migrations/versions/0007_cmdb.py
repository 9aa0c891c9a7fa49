"""CMDB: CI classes, CIs, relations, CI history; tickets' affected CIs

Configuration items (cmdb_cis) of admin-, seed- or plugin-defined classes
(cmdb_classes: parent class, typed attribute definitions as JSON), directional typed
relations (cmdb_relations) and every change as CI history (cmdb_ci_history); which CIs
a ticket names as affected (ticket_cis).

cmdb_relations keeps each relation as stated (source, type, target) and in dependency
terms (dependent_id needs dependency_id; the same pair, swapped for part_of), checked
by ck_cmdb_relations_direction. Impact analysis walks the dependency columns, one
index per direction (ix_cmdb_relations_dependency: who needs X;
ix_cmdb_relations_dependent: what X needs). No duplicate relation
(uq_cmdb_relations_source_target_type), none from a CI to itself.

Seeds the classes servicedesk starts with (a literal copy of cmdb.seed.SEED_CLASSES
as of this revision; tests/test_cmdb_classes.py checks they agree).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 20:45:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

RELATION_TYPES = "('depends_on', 'runs_on', 'hosted_on', 'connects_to', 'part_of')"
STATUSES = "('planned', 'in_use', 'maintenance', 'retired')"


def _attr(name, type_, label, **extra):
    return {"name": name, "type": type_, "label": label, "required": False, "help": "",
            **extra}


CRITICALITY = _attr("criticality", "enum", "Criticality",
                    choices=["low", "medium", "high", "critical"])
SEED_CLASSES = [
    # key, name, parent, service type, description, attributes
    ("location", "Location", None, None, "A site, building, room or rack.",
     [_attr("address", "string", "Address"), _attr("site_code", "string", "Site code")]),
    ("business_service", "Business service", None, "business",
     "What the business uses: payroll, e-mail, the web shop.",
     [CRITICALITY, _attr("service_owner", "string", "Service owner")]),
    ("technical_service", "Technical service", None, "technical",
     "What IT provides to other services: database hosting, backup, DNS.", [CRITICALITY]),
    ("application", "Application", None, None,
     "Installed software that serves users or other systems.",
     [_attr("vendor", "string", "Vendor"), _attr("version", "string", "Version"),
      _attr("url", "string", "URL")]),
    ("database", "Database", None, None, "A database (instance or schema).",
     [_attr("engine", "enum", "Engine", choices=["postgresql", "mysql", "oracle",
                                                 "sql_server", "sqlite", "other"]),
      _attr("port", "integer", "Port")]),
    ("server", "Server", None, None,
     "A computer that runs software: physical, or (subclass) virtual.",
     [_attr("hostname", "string", "Host name"),
      _attr("ip_address", "ip_address", "IP address"),
      _attr("os", "string", "Operating system"),
      _attr("cpu_cores", "integer", "CPU cores"),
      _attr("memory_gb", "decimal", "Memory (GB)"),
      _attr("location", "reference", "Location", ci_class="location"),
      _attr("under_warranty", "boolean", "Under warranty"),
      _attr("purchased_on", "date", "Purchased on")]),
    ("virtual_machine", "Virtual machine", "server", None,
     "A server that is a virtual machine.", [_attr("cluster", "string", "Cluster")]),
    ("network_device", "Network device", None, None,
     "Switches, routers, firewalls, load balancers, access points.",
     [_attr("device_type", "enum", "Device type",
            choices=["switch", "router", "firewall", "load_balancer", "access_point"]),
      _attr("ip_address", "ip_address", "IP address"),
      _attr("location", "reference", "Location", ci_class="location")]),
]


def upgrade():
    classes = op.create_table('cmdb_classes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('service_type', sa.String(length=16), nullable=True),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("service_type IN ('business', 'technical')",
                       name=op.f('ck_cmdb_classes_service_type')),
    sa.ForeignKeyConstraint(['parent_id'], ['cmdb_classes.id'],
                            name=op.f('fk_cmdb_classes_parent_id_cmdb_classes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cmdb_classes')),
    sa.UniqueConstraint('key', name=op.f('uq_cmdb_classes_key')),
    sa.UniqueConstraint('name', name=op.f('uq_cmdb_classes_name'))
    )
    op.create_index(op.f('ix_cmdb_classes_parent_id'), 'cmdb_classes', ['parent_id'],
                    unique=False)

    op.create_table('cmdb_cis',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('owner_group_id', sa.Integer(), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('external_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint(f"status IN {STATUSES}", name=op.f('ck_cmdb_cis_status')),
    sa.ForeignKeyConstraint(['class_id'], ['cmdb_classes.id'],
                            name=op.f('fk_cmdb_cis_class_id_cmdb_classes')),
    sa.ForeignKeyConstraint(['owner_group_id'], ['groups.id'],
                            name=op.f('fk_cmdb_cis_owner_group_id_groups'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cmdb_cis')),
    sa.UniqueConstraint('external_key', name=op.f('uq_cmdb_cis_external_key'))
    )
    op.create_index('ix_cmdb_cis_name', 'cmdb_cis', ['name', 'id'], unique=False)
    op.create_index('ix_cmdb_cis_class', 'cmdb_cis', ['class_id', 'name', 'id'], unique=False)
    op.create_index(op.f('ix_cmdb_cis_owner_group_id'), 'cmdb_cis', ['owner_group_id'],
                    unique=False)

    op.create_table('cmdb_relations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('dependent_id', sa.Integer(), nullable=False),
    sa.Column('dependency_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('source_id <> target_id', name=op.f('ck_cmdb_relations_not_self')),
    sa.CheckConstraint(f"type IN {RELATION_TYPES}", name=op.f('ck_cmdb_relations_type')),
    sa.CheckConstraint(
        "(type IN ('part_of') AND dependent_id = target_id AND dependency_id = source_id)"
        " OR (type NOT IN ('part_of') AND dependent_id = source_id"
        " AND dependency_id = target_id)",
        name=op.f('ck_cmdb_relations_direction')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'],
                            name=op.f('fk_cmdb_relations_created_by_id_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['cmdb_cis.id'],
                            name=op.f('fk_cmdb_relations_source_id_cmdb_cis'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['cmdb_cis.id'],
                            name=op.f('fk_cmdb_relations_target_id_cmdb_cis'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cmdb_relations')),
    sa.UniqueConstraint('source_id', 'target_id', 'type',
                        name='uq_cmdb_relations_source_target_type')
    )
    # Impact analysis, one index per direction (see the docstring).
    op.create_index('ix_cmdb_relations_dependency', 'cmdb_relations',
                    ['dependency_id', 'dependent_id'], unique=False)
    op.create_index('ix_cmdb_relations_dependent', 'cmdb_relations',
                    ['dependent_id', 'dependency_id'], unique=False)

    op.create_table('cmdb_ci_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ci_id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('field', sa.String(length=120), nullable=True),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'],
                            name=op.f('fk_cmdb_ci_history_actor_id_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ci_id'], ['cmdb_cis.id'],
                            name=op.f('fk_cmdb_ci_history_ci_id_cmdb_cis'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cmdb_ci_history'))
    )
    op.create_index('ix_cmdb_ci_history_ci', 'cmdb_ci_history', ['ci_id', 'id'], unique=False)

    op.create_table('ticket_cis',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('ci_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['ci_id'], ['cmdb_cis.id'],
                            name=op.f('fk_ticket_cis_ci_id_cmdb_cis')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                            name=op.f('fk_ticket_cis_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', 'ci_id', name=op.f('pk_ticket_cis'))
    )
    op.create_index('ix_ticket_cis_ci', 'ticket_cis', ['ci_id', 'ticket_id'], unique=False)

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(classes, [
        {"key": key, "name": name, "parent_id": None, "description": description,
         "service_type": service_type, "attributes": attributes, "source": "seed",
         "created_at": now, "updated_at": now, "version": 1}
        for key, name, _parent, service_type, description, attributes in SEED_CLASSES
    ])
    for key, _name, parent, *_rest in SEED_CLASSES:
        if parent:
            op.execute(sa.text(
                "UPDATE cmdb_classes SET parent_id = "
                "(SELECT id FROM cmdb_classes WHERE key = :parent) WHERE key = :key"
            ).bindparams(parent=parent, key=key))


def downgrade():
    op.drop_index('ix_ticket_cis_ci', table_name='ticket_cis')
    op.drop_table('ticket_cis')
    op.drop_index('ix_cmdb_ci_history_ci', table_name='cmdb_ci_history')
    op.drop_table('cmdb_ci_history')
    op.drop_index('ix_cmdb_relations_dependent', table_name='cmdb_relations')
    op.drop_index('ix_cmdb_relations_dependency', table_name='cmdb_relations')
    op.drop_table('cmdb_relations')
    op.drop_index(op.f('ix_cmdb_cis_owner_group_id'), table_name='cmdb_cis')
    op.drop_index('ix_cmdb_cis_class', table_name='cmdb_cis')
    op.drop_index('ix_cmdb_cis_name', table_name='cmdb_cis')
    op.drop_table('cmdb_cis')
    op.drop_index(op.f('ix_cmdb_classes_parent_id'), table_name='cmdb_classes')
    op.drop_table('cmdb_classes')
