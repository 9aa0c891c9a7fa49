"""Reference data cached per process and checked on every use.

A few tables are read by every ticket change but edited a few times a year: SLA
policies with their calendars, OLAs. Loading them as ORM objects on every request
cost about 0.5 ms each (bench/api_load.py). Instead each use runs one small aggregate
query, the *fingerprint* (row count, sum of the optimistic-lock versions, newest
``updated_at`` of each table), and reuses the copies made when the fingerprint was
last different. The check runs in the caller's transaction, so every web process and
worker sees an edit at once, and rows flushed in that transaction count too.

Every table behind a fingerprint must have a ``version`` that each ORM update bumps,
an ``updated_at`` that each update sets, and rows that are never deleted (a delete
plus an insert could restore an old fingerprint). The cached values are *transient
copies* (no session knows them): callers read them and never change them.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from flask import current_app
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from servicedesk.extensions import db

T = TypeVar("T")


def fingerprint_sql(*tables: str) -> str:
    """The fingerprint query of ``tables`` (trusted names from code, never input)."""
    parts = []
    for table in tables:
        parts.append(f"(SELECT count(*) FROM {table})")
        parts.append(f"(SELECT coalesce(sum(version), 0) FROM {table})")
        parts.append(f"(SELECT max(updated_at) FROM {table})")
    return "SELECT " + ", ".join(parts)


def cached(name: str, fingerprint: str, load: Callable[[], T]) -> T:
    """``load()``'s value, reused while the ``fingerprint`` query answers the same.

    The query's answer is kept for the rest of the transaction until the session
    flushes, so several caches sharing one fingerprint cost one query per change."""
    from servicedesk.tickets.service import driver_sql

    store = current_app.extensions["servicedesk"].setdefault("refdata", {})
    session = db.session()
    memo = session.info.setdefault(_MEMO, {})
    transaction = session.get_transaction()
    seen = memo.get(fingerprint)
    if seen is not None and transaction is not None and seen[0] is transaction:
        key = seen[1]
    else:
        with db.session.no_autoflush:
            key = tuple(driver_sql(fingerprint).one())
        memo[fingerprint] = (session.get_transaction(), key)
    hit = store.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = load()
    store[name] = (key, value)
    return value


_MEMO = "refdata_fingerprints"


@event.listens_for(Session, "after_flush")
def _forget_fingerprints(session, _flush_context):
    """Rows this transaction wrote may be reference data: ask again after a flush."""
    session.info.pop(_MEMO, None)


def forget() -> None:
    """Drop every cached value of this application (tests empty the database)."""
    current_app.extensions["servicedesk"].pop("refdata", None)


def transient_copy(row, **relations):
    """A copy of ``row``'s column values that no session knows, plus ``relations``."""
    mapper = inspect(row).mapper
    copy = mapper.class_(**{attr.key: getattr(row, attr.key) for attr in mapper.column_attrs})
    for key, value in relations.items():
        setattr(copy, key, value)
    return copy
