"""Keyset paging of ticket lists: opaque cursors and the "rows after this one" predicate.

A list is ordered by ``columns``, a sequence of ``(column, descending)`` pairs whose
last pair is unique (the ticket id), so every row has one place in the order. The page
hands out the last row's values of those columns as a cursor; the next page asks for
the rows strictly after them. Cursors are URL-safe base64 of a JSON array: date-times
as ISO strings with their offset, everything else as non-negative integers. A cursor
this server did not hand out is a 422 naming ``cursor``, never a 500.

Every ticket kind's list (incidents, problems, requests...) pages this way.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from flask_babel import gettext as _
from sqlalchemy import and_, or_

from servicedesk.errors import ValidationError
from servicedesk.tickets.models import Ticket
from servicedesk.types import UTCDateTime


def keyset_columns(sorts: dict, sort: str) -> tuple:
    """The ``(column, descending)`` pairs of the order ``sort`` names in ``sorts`` (a
    kind's list orders), ending with the ticket id as the tie-breaker; an unknown
    ``sort`` is a 422 naming ``sort``.

    The tie-breaker is tickets.id, not the kind's own id column (which renders e.g.
    incidents.id): the same value, but only a column of ``tickets`` lets an index on it
    (e.g. the queue's ix_tickets_open_queue: priority, created_at, id) deliver the whole
    ORDER BY, so the database stops after the page instead of sorting every visible row.
    """
    if sort not in sorts:
        raise ValidationError(
            _("Unknown sort %(sort)s.", sort=repr(sort)),
            fields={"sort": [_("One of: %(values)s.", values=", ".join(sorts))]},
        )
    return sorts[sort] + ((Ticket.id, sorts[sort][0][1]),)


def order_by(columns) -> list:
    """The ORDER BY clauses of ``columns``."""
    return [column.desc() if desc else column.asc() for column, desc in columns]


def cut_page(rows: list, columns, limit: int) -> tuple[list, str | None]:
    """The page in ``rows`` (read with LIMIT ``limit`` + 1) and the cursor of the next
    page, None on the last one."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor([getattr(rows[-1], c.key) for c, _desc in columns])


def encode_cursor(values: list) -> str:
    """The cursor of a row whose sort-column values are ``values`` (in sort order)."""
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, columns) -> list:
    """The values ``encode_cursor`` encoded, checked against ``columns``' types; a 422
    naming ``cursor`` for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(columns):
            raise ValueError
        decoded = []
        for (column, _desc), value in zip(columns, values):
            if isinstance(column.type, UTCDateTime):
                value = datetime.fromisoformat(value)
                if value.tzinfo is None:
                    raise ValueError
                value = value.astimezone(timezone.utc)  # OverflowError beyond year 1..9999
            elif not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
                raise ValueError
            decoded.append(value)
        return decoded
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationError(
            _("The cursor is not one this server handed out."),
            fields={"cursor": [_("Invalid cursor.")]},
        ) from None


def to_utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC, as the columns store it; refused (naming ``field``) if it has no
    time zone or falls outside the years 1-9999 once in UTC (e.g. 0001-01-01T00:00+01:00).
    For the ``created_after``/``created_before`` filters of the kinds' lists."""
    try:
        if value.tzinfo is None:
            raise ValueError
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValidationError(
            _("%(field)s must be a date-time with a time zone, between the years 1 and 9999 "
              "in UTC.", field=field),
            fields={field: [_("Not a date-time with a time zone within the years 1-9999 (UTC).")]},
        ) from None


def after_cursor(columns, values):
    """Keyset predicate: rows strictly after ``values`` in the order ``columns``."""
    clauses = []
    for i, (column, desc) in enumerate(columns):
        equal = [c == v for (c, _), v in zip(columns[:i], values[:i])]
        step = column < values[i] if desc else column > values[i]
        clauses.append(and_(*equal, step))
    return or_(*clauses)
