"""Migration 0007 builds exactly the tables the CMDB's models describe, on SQLite and
PostgreSQL (columns, types, indexes, constraints that autogenerate compares), and its
constraints hold in the database itself."""

from __future__ import annotations

import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError, SAWarning

from cmdb.models import ConfigurationItem, Relation
from cmdb_support import estate  # noqa: F401  (fixture)
from servicedesk.extensions import db

TABLES = {"cmdb_classes", "cmdb_cis", "cmdb_relations", "cmdb_ci_history", "ticket_cis"}


def test_the_migrated_schema_matches_the_models(app):
    with db.engine.connect() as connection, warnings.catch_warnings():
        # SQLite cannot reflect the tickets' expression index (not ours): it says so.
        warnings.simplefilter("ignore", SAWarning)
        warnings.simplefilter("ignore", UserWarning)  # alembic's note about the same index
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    # Other packages' differences (if any) are theirs to answer for.
    ours = [entry for entry in diff if any(table in repr(entry) for table in TABLES)]
    assert ours == []


def test_the_relation_direction_is_enforced_by_the_database(app, estate):
    a = estate.ci("a", "application")
    b = estate.ci("b", "server")
    with pytest.raises(IntegrityError):  # part_of: the target is the dependent
        db.session.execute(insert(Relation), [{
            "source_id": a.id, "target_id": b.id, "type": "part_of", "dependent_id": a.id,
            "dependency_id": b.id, "created_at": a.created_at}])
    db.session.rollback()
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Relation), [{
            "source_id": a.id, "target_id": a.id, "type": "runs_on", "dependent_id": a.id,
            "dependency_id": a.id, "created_at": a.created_at}])
    db.session.rollback()
    with pytest.raises(IntegrityError):
        db.session.execute(text("UPDATE cmdb_cis SET status = 'lost' WHERE id = :id"),
                           {"id": a.id})
    db.session.rollback()
    assert db.session.get(ConfigurationItem, a.id).status == "in_use"
