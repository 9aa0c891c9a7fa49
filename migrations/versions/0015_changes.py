"""Changes: templates, risk, freeze windows, links

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 23:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "change_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("implementation_plan", sa.Text(), nullable=False),
        sa.Column("backout_plan", sa.Text(), nullable=False),
        sa.Column("test_plan", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_change_templates_name")),
    )
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_type", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("risk_level", sa.String(length=8), nullable=True),
        sa.Column("risk_answers", sa.JSON(), nullable=True),
        sa.Column("implementation_plan", sa.Text(), nullable=True),
        sa.Column("backout_plan", sa.Text(), nullable=True),
        sa.Column("test_plan", sa.Text(), nullable=True),
        sa.Column("planned_start", sa.DateTime(), nullable=True),
        sa.Column("planned_end", sa.DateTime(), nullable=True),
        sa.Column("actual_start", sa.DateTime(), nullable=True),
        sa.Column("actual_end", sa.DateTime(), nullable=True),
        sa.Column("review_required", sa.Boolean(), nullable=False),
        sa.Column("review_outcome", sa.String(length=16), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.CheckConstraint("change_type IN ('standard', 'normal', 'emergency')",
                           name=op.f("ck_changes_change_type")),
        sa.ForeignKeyConstraint(["id"], ["tickets.id"], name=op.f("fk_changes_id_tickets"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["template_id"], ["change_templates.id"],
                                name=op.f("fk_changes_template_id_change_templates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    op.create_index("ix_changes_planned", "changes", ["planned_start", "planned_end"])
    op.create_table(
        "change_risk_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("routes", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"],
                                name=op.f("fk_change_risk_model_updated_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_risk_model")),
    )
    op.create_table(
        "change_freeze_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_change_freeze_windows_window")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"],
                                name=op.f("fk_change_freeze_windows_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_freeze_windows")),
    )
    op.create_index("ix_change_freeze_windows_span", "change_freeze_windows",
                    ["starts_at", "ends_at"])
    for table, other in (("change_problems", "problem_id"), ("change_incidents", "incident_id")):
        op.create_table(
            table,
            sa.Column("change_id", sa.Integer(), nullable=False),
            sa.Column(other, sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=True),
            sa.ForeignKeyConstraint(["change_id"], ["changes.id"],
                                    name=op.f(f"fk_{table}_change_id_changes"),
                                    ondelete="CASCADE"),
            sa.ForeignKeyConstraint([other], ["tickets.id"],
                                    name=op.f(f"fk_{table}_{other}_tickets"),
                                    ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("change_id", other, name=op.f(f"pk_{table}")),
        )
        op.create_index(f"ix_{table}_{other.split('_')[0]}", table, [other, "change_id"])


def downgrade():
    op.drop_index("ix_change_incidents_incident", table_name="change_incidents")
    op.drop_table("change_incidents")
    op.drop_index("ix_change_problems_problem", table_name="change_problems")
    op.drop_table("change_problems")
    op.drop_index("ix_change_freeze_windows_span", table_name="change_freeze_windows")
    op.drop_table("change_freeze_windows")
    op.drop_table("change_risk_model")
    op.drop_index("ix_changes_planned", table_name="changes")
    op.drop_table("changes")
    op.drop_table("change_templates")
