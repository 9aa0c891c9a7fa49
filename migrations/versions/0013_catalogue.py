"""Service catalogue, request offerings and service requests

catalogue_services: business / technical services (owner group, the SLA policy they
are offered under); service_cis: the CMDB CIs that support each service;
catalogue_offerings: what can be requested under a service, with its form as JSON
(servicedesk.catalogue.formdef), approval rule and fulfilment group;
service_requests: the REQ kind of ticket (joined to tickets), with the offering and
the form's answers.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 23:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "catalogue_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_group_id", sa.Integer(), nullable=True),
        sa.Column("sla_policy_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("kind IN ('business', 'technical')",
                           name=op.f("ck_catalogue_services_kind")),
        sa.ForeignKeyConstraint(["owner_group_id"], ["groups.id"],
                                name=op.f("fk_catalogue_services_owner_group_id_groups"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["sla_policy_id"], ["sla_policies.id"],
                                name=op.f("fk_catalogue_services_sla_policy_id_sla_policies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_services")),
        sa.UniqueConstraint("name", name=op.f("uq_catalogue_services_name")),
    )
    op.create_table(
        "service_cis",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("ci_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ci_id"], ["cmdb_cis.id"],
                                name=op.f("fk_service_cis_ci_id_cmdb_cis"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_id"], ["catalogue_services.id"],
                                name=op.f("fk_service_cis_service_id_catalogue_services"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("service_id", "ci_id", name=op.f("pk_service_cis")),
    )
    op.create_index(op.f("ix_service_cis_ci_id"), "service_cis", ["ci_id"], unique=False)
    op.create_table(
        "catalogue_offerings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("approval_rule", sa.String(length=16), nullable=False),
        sa.Column("approval_group_id", sa.Integer(), nullable=True),
        sa.Column("fulfilment_group_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("approval_rule IN ('none', 'manager', 'group')",
                           name=op.f("ck_catalogue_offerings_approval_rule")),
        sa.ForeignKeyConstraint(["approval_group_id"], ["groups.id"],
                                name=op.f("fk_catalogue_offerings_approval_group_id_groups"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["fulfilment_group_id"], ["groups.id"],
                                name=op.f("fk_catalogue_offerings_fulfilment_group_id_groups"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["service_id"], ["catalogue_services.id"],
                                name=op.f("fk_catalogue_offerings_service_id_catalogue_services")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_offerings")),
        sa.UniqueConstraint("service_id", "name", name=op.f("uq_catalogue_offerings_service_id")),
    )
    op.create_index(op.f("ix_catalogue_offerings_service_id"), "catalogue_offerings",
                    ["service_id"], unique=False)
    op.create_table(
        "service_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offering_id", sa.Integer(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("approval", sa.String(length=16), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["id"], ["tickets.id"],
                                name=op.f("fk_service_requests_id_tickets"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["offering_id"], ["catalogue_offerings.id"],
                                name=op.f("fk_service_requests_offering_id_catalogue_offerings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_requests")),
    )
    op.create_index(op.f("ix_service_requests_offering_id"), "service_requests",
                    ["offering_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_service_requests_offering_id"), table_name="service_requests")
    op.drop_table("service_requests")
    op.drop_index(op.f("ix_catalogue_offerings_service_id"), table_name="catalogue_offerings")
    op.drop_table("catalogue_offerings")
    op.drop_index(op.f("ix_service_cis_ci_id"), table_name="service_cis")
    op.drop_table("service_cis")
    op.drop_table("catalogue_services")
