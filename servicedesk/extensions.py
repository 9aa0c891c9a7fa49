"""Extension objects, created once and bound to an app in ``create_app``."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from contextvars import ContextVar

from flask import has_request_context, request
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

try:
    import fcntl
except ImportError:  # not POSIX: writers wait in SQLite's busy handler only
    fcntl = None

# Stable constraint names, so Alembic revisions mean the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# expire_on_commit=False: a session lives for one request (one app context), and after
# its commit the request only reads what it just wrote: plugin hooks and the response.
# Expiring everything at commit made those reads reload each object (one SELECT per
# ticket, user, group, category touched) in a new transaction, which on SQLite is a
# BEGIN IMMEDIATE: the write lock was taken again and held until the request ended.
db = SQLAlchemy(
    metadata=MetaData(naming_convention=NAMING_CONVENTION),
    session_options={"expire_on_commit": False},
)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, _record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # We issue BEGIN ourselves (below); pysqlite's own implicit BEGIN would defer the
    # write lock until the first write, and a read-then-write transaction then fails
    # with "database is locked" instead of waiting when another process wrote first.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    main = [row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"]
    cursor.close()
    if main and main[0]:  # a file, not :memory: or a temporary database
        _record.info[_WRITER_LOCK] = main[0] + "-writer"


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(connection):
    if connection.dialect.name != "sqlite":
        return
    # Requests that only read take no write lock; everything else (writes, jobs, the
    # CLI) takes it at BEGIN, where SQLite's busy timeout applies, after queueing for
    # it (see "writers queue" below).
    read_only = _reading.get() or (has_request_context() and request.method in _READ_ONLY_METHODS)
    if read_only:
        connection.exec_driver_sql("BEGIN")
        return
    if _queue_for_write_lock(connection.info):
        _begin_write(connection)
    else:  # waited the whole busy timeout for the writer ahead: fail now, not in 10 s
        connection.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            _begin_write(connection)
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _begin_write(connection) -> None:
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        _leave_write_queue(connection.info)
        raise


_reading = ContextVar("servicedesk_reading", default=False)


@contextmanager
def read_only_transaction():
    """Run the reads that precede a write in a transaction of their own (SQLite only).

    Writers serialise on SQLite's one write lock, taken at BEGIN IMMEDIATE, so the less
    a write transaction does the more writers get through: the API's token check (a
    POST's first query, before the body is even parsed) and the lookups of incident
    creation run in here instead. It BEGINs without the lock and commits (ends) the
    read on the way out; objects read stay loaded (sessions do not expire on commit)
    and the write that follows takes the lock at its own BEGIN IMMEDIATE, as before.
    Reads and write are then two transactions, as they effectively are at PostgreSQL's
    READ COMMITTED. A transaction already open is left alone; GET requests (read-only
    throughout), and other databases (row locks, no write lock), are not concerned.
    """
    session = db.session()
    if (session.in_transaction() or session.get_bind().dialect.name != "sqlite"
            or (has_request_context() and request.method in _READ_ONLY_METHODS)):
        yield
        return
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)
    session.commit()


# --- SQLite writers queue for the write lock ---------------------------------------
#
# SQLite's busy handler waits for a lock by sleeping 1, 2, 5, 10, 15, 20, 25... up to
# 100 ms between tries, and a writer that is done and comes straight back usually
# beats the sleeper to it. With two web processes writing all the time, a writer then
# waited about as long as the lock was held and sometimes half a second (measured with
# bench/api_load.py). So writers first take an exclusive flock(2) on "<db>-writer",
# which they poll every 0.05-0.5 ms, and then BEGIN IMMEDIATE, which then almost never
# waits. SQLite's lock still guards the data: the flock only orders the writers, and
# a writer that cannot get it within the busy timeout goes to BEGIN IMMEDIATE anyway.
# The flock is let go when the transaction ends (commit/rollback, or at the latest
# when the connection goes back to the pool), and with the process if it dies.

BUSY_TIMEOUT_MS = 10_000
_WRITER_LOCK = "servicedesk_writer_lock"
_WRITER_FD = "servicedesk_writer_fd"


def _queue_for_write_lock(info) -> bool:
    """Wait for our turn to write; False if the busy timeout passed waiting."""
    path = info.get(_WRITER_LOCK)
    if path is None or fcntl is None:
        return True
    _leave_write_queue(info)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return True  # e.g. a read-only directory: SQLite's own wait still applies
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.00005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.0005)
    info[_WRITER_FD] = fd
    return True


def _leave_write_queue(info) -> None:
    fd = info.pop(_WRITER_FD, None)
    if fd is not None:
        os.close(fd)  # closing the file lets go of the flock


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _sqlite_on_end(connection):
    # Fired just before COMMIT/ROLLBACK: a writer let in now may wait those few
    # microseconds in SQLite's busy handler, which is what it is for.
    _leave_write_queue(connection.info)


@event.listens_for(Pool, "checkin")
def _sqlite_on_checkin(_dbapi_connection, record):
    if record is not None:
        _leave_write_queue(record.info)
