"""Problems and the known-error database

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23 23:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    # A problem is a ticket (joined-table inheritance, like incidents).
    op.create_table(
        "problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_impact", sa.String(length=8), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("workaround", sa.Text(), nullable=True),
        sa.Column("workaround_version", sa.Integer(), nullable=False,
                  server_default=sa.text("0")),
        sa.Column("known_error_at", sa.DateTime(), nullable=True),
        sa.Column("incident_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.ForeignKeyConstraint(["id"], ["tickets.id"], name=op.f("fk_problems_id_tickets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_problems")),
    )
    op.create_index(op.f("ix_problems_known_error_at"), "problems", ["known_error_at"])
    op.create_table(
        "problem_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("linked_by_id", sa.Integer(), nullable=True),
        sa.Column("linked_at", sa.DateTime(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=False,
                  server_default=sa.text("0")),
        sa.ForeignKeyConstraint(["problem_id"], ["problems.id"],
                                name=op.f("fk_problem_incidents_problem_id_problems"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_problem_incidents_incident_id_incidents"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["linked_by_id"], ["users.id"],
                                name=op.f("fk_problem_incidents_linked_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_problem_incidents")),
        sa.UniqueConstraint("problem_id", "incident_id",
                            name=op.f("uq_problem_incidents_problem_id")),
    )
    op.create_index("ix_problem_incidents_incident", "problem_incidents",
                    ["incident_id", "problem_id"])


def downgrade():
    op.drop_index("ix_problem_incidents_incident", table_name="problem_incidents")
    op.drop_table("problem_incidents")
    op.drop_index(op.f("ix_problems_known_error_at"), table_name="problems")
    op.drop_table("problems")
