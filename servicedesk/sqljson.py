"""JSON aggregation that compiles on SQLite and PostgreSQL alike.

A list page shows each row's small related lists (affected CIs, OLA clocks) without a
query per row: a correlated subquery aggregates them into one JSON array column,
``json_array_agg(json_object(key, value, ...))``. SQLite spells these
``json_group_array``/``json_object``, PostgreSQL ``json_agg``/``json_build_object``.
"""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class json_object(FunctionElement):  # noqa: N801 (reads as the SQL function)
    """``json_object(k1, v1, k2, v2, ...)``: one JSON object."""

    inherit_cache = True
    name = "json_object"


@compiles(json_object)
def _json_object_sqlite(element, compiler, **kw):
    return "json_object(%s)" % compiler.process(element.clauses, **kw)


@compiles(json_object, "postgresql")
def _json_object_pg(element, compiler, **kw):
    return "json_build_object(%s)" % compiler.process(element.clauses, **kw)


class json_array_agg(FunctionElement):  # noqa: N801
    """The aggregate of its argument over the group as a JSON array (``[]`` if empty)."""

    inherit_cache = True
    name = "json_group_array"


@compiles(json_array_agg)
def _json_array_sqlite(element, compiler, **kw):
    return "json_group_array(%s)" % compiler.process(element.clauses, **kw)


@compiles(json_array_agg, "postgresql")
def _json_array_pg(element, compiler, **kw):
    return "coalesce(json_agg(%s), '[]'::json)" % compiler.process(element.clauses, **kw)
