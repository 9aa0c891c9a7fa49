"""Fixtures: every test runs against SQLite and against the real PostgreSQL.

Each back end gets a database of its own, built from empty by ``servicedesk db
upgrade`` (the same command users run), and emptied after every test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import text

from servicedesk import create_app, refdata
from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.tickets.service import DEFAULT_PRIORITY_MATRIX

PG_ADMIN_DSN = os.environ.get("SERVICEDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVICEDESK = str(Path(sys.executable).with_name("servicedesk"))
# Reference rows the migrations seed; kept (and restored) between tests.
KEEP = {"alembic_version"}

BACKENDS = ["sqlite", "postgresql"]

# Redis databases the tests may use, per pytest-xdist worker (``make test`` runs the
# suite in parallel processes): a test asks for one of the first worker's numbers and
# gets its own process's counterpart, so two workers never flush each other's jobs.
_REDIS_DATABASES = {
    "gw0": (9, 10, 11, 12, 13),
    "gw1": (1, 2, 3, 4, 5),
    "gw2": (6, 7, 8, 14, 15),
}


def redis_test_url(database: int, env: str | None = None) -> str:
    """``redis://127.0.0.1:6379/<n>`` for this test process (see _REDIS_DATABASES).

    ``database`` is one of 9..13; ``env`` names a variable that overrides the URL.
    """
    if env and os.environ.get(env):
        return os.environ[env]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    if worker not in _REDIS_DATABASES:
        raise RuntimeError(f"no Redis databases reserved for pytest-xdist worker {worker}; "
                           "run with at most 3 workers")
    number = _REDIS_DATABASES[worker][_REDIS_DATABASES["gw0"].index(database)]
    return f"redis://127.0.0.1:6379/{number}"


@pytest.fixture
def redis_url():
    """An empty Redis database of this test process's own (database "10")."""
    from redis import Redis

    url = redis_test_url(10)
    connection = Redis.from_url(url)
    connection.flushdb()
    try:
        yield url
    finally:
        connection.flushdb()
        connection.close()


def migrate(url: str) -> None:
    env = {**os.environ, "SERVICEDESK_DATABASE_URL": url}
    subprocess.run([SERVICEDESK, "db", "upgrade"], env=env, check=True, capture_output=True)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "servicedesk.sqlite")
    migrate(url)
    return url


@pytest.fixture(scope="session")
def postgresql_url():
    name = f"sdtest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RequestLikeClient(FlaskClient):
    """A test client whose every request starts with an empty ``g``.

    The ``app`` fixture holds one application context for the whole test (so factories
    can use the database), and a request inside it would otherwise inherit ``g`` from
    the previous one: Flask-Login's user, Flask-WTF's CSRF token and Flask-Babel's
    locale live there. A real request always gets a fresh one.
    """

    def open(self, *args, **kwargs):
        for name in list(g):
            g.pop(name)
        return super().open(*args, **kwargs)


def make_app(url: str, **overrides):
    app = _create_test_app(url, **overrides)
    app.test_client_class = RequestLikeClient
    return app


def _create_test_app(url: str, **overrides):
    return create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": "test-secret",
        "SERVICEDESK_REDIS_URL": None,
        "WTF_CSRF_ENABLED": True,
        "SESSION_COOKIE_SECURE": False,
        **overrides,
    })


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def session_app(backend, request):
    url = request.getfixturevalue(f"{backend}_url")
    app = make_app(url)
    with app.app_context():
        # What the migrations seed (default notification rules, ...) is emptied after
        # every test, so the first test must not see it either: every test starts alike.
        empty_database()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


def empty_database() -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in KEEP]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in tables)
                                + " RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    priority = db.metadata.tables["priority_matrix"]
    db.session.execute(priority.insert(), [
        {"impact": i, "urgency": u, "priority": p} for (i, u), p in DEFAULT_PRIORITY_MATRIX.items()
    ])
    db.session.commit()


@pytest.fixture
def app(session_app):
    saved = dict(session_app.config)
    session_app.extensions["servicedesk"]["failures"].clear()
    with session_app.app_context():
        yield session_app
        db.session.rollback()
        empty_database()
        refdata.forget()
        db.session.remove()
    session_app.config.clear()
    session_app.config.update(saved)


@pytest.fixture
def client(app):
    return app.test_client()


class Api:
    """A JSON client speaking to /api/v1 with one user's bearer token."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def _headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, json=None, **kwargs):
        return self.client.open("/api/v1" + path, method=method, json=json,
                                headers=self._headers(), **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.request("POST", path, json=json if json is not None else {}, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.request("PATCH", path, json=json if json is not None else {}, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.request("PUT", path, json=json if json is not None else {}, **kwargs)


class World:
    """Factories for users, groups and their API clients (``indico`` style callables)."""

    def __init__(self, app, client):
        self.app = app
        self.client = client
        self._n = 0

    def group(self, name: str | None = None, line: int = 1):
        self._n += 1
        return identity.create_group(None, name or f"group{self._n}", line)

    def user(self, role: str = "requester", username: str | None = None, groups=(),
             password: str | None = None, **kwargs):
        self._n += 1
        username = username or f"{role}{self._n}"
        return identity.create_user(
            None, username, f"{username}@example.test", role,
            groups=[g if isinstance(g, str) else g.name for g in groups],
            password=password, **kwargs,
        )

    def api(self, user=None) -> Api:
        return Api(self.client, identity.issue_token(user) if user is not None else None)

    def incident(self, requester, **fields) -> dict:
        body = {"title": "Printer jam", **fields}
        response = self.api(requester).post("/incidents", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()


@pytest.fixture
def world(app, client):
    return World(app, client)


@pytest.fixture
def desk(world):
    """A small desk: L1/L2/L3 groups, agents in each, a manager, an admin, two employees."""

    class Desk:
        l1 = world.group("Service Desk", 1)
        l2 = world.group("Network Team", 2)
        l3 = world.group("Engineering", 3)
        agent = world.user("agent", "agent1", groups=[l1])
        agent_b = world.user("agent", "agent2", groups=[l1])
        l2_agent = world.user("agent", "netagent", groups=[l2])
        l3_agent = world.user("agent", "engineer", groups=[l3])
        manager = world.user("manager", "boss", groups=[l1])
        admin = world.user("admin", "root")
        employee = world.user("requester", "emma", display_name="Emma Employee")
        other_employee = world.user("requester", "omid")

    return Desk
