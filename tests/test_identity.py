"""Identity: the ``servicedesk`` CLI (run for real, as a subprocess), API tokens, deactivation.

The CLI tests use a fresh migrated SQLite file of their own (not the two-back-end ``app``
fixture): what they test is the command line, not the database.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess

import pytest
from conftest import SERVICEDESK, make_app, migrate

from servicedesk.extensions import db
from servicedesk.identity import service as identity

# --- the command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-template") / "servicedesk.sqlite"
    migrate(f"sqlite:///{path}")
    return path


class Desk:
    """A migrated SQLite file, the CLI pointed at it, and an app on it for checking."""

    def __init__(self, path):
        self.path = path
        self.url = f"sqlite:///{path}"
        self.env = {**os.environ, "SERVICEDESK_DATABASE_URL": self.url,
                    "SERVICEDESK_SECRET_KEY": "cli-test-secret"}
        self.env.pop("SERVICEDESK_REDIS_URL", None)

    def run(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([SERVICEDESK, *args], env=self.env, capture_output=True,
                              text=True, timeout=120)

    def ok(self, *args) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def query(self, sql, *params):
        with sqlite3.connect(self.path) as connection:
            return connection.execute(sql, params).fetchall()

    def count(self, table) -> int:
        return self.query(f"SELECT count(*) FROM {table}")[0][0]


@pytest.fixture
def cli(migrated_template, tmp_path):
    path = tmp_path / "servicedesk.sqlite"
    shutil.copy(migrated_template, path)
    return Desk(path)


@pytest.fixture
def cli_app(cli):
    app = make_app(cli.url)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_groups_and_users_are_created_from_the_command_line(cli):
    assert "Network" in cli.ok("groups", "create", "Network", "--line", "2")
    out = cli.ok("users", "create", "nina", "--email", "nina@example.test", "--role", "agent",
                 "--group", "Network", "--password", "correct horse")
    assert "nina" in out
    assert cli.query("SELECT name, support_line FROM groups") == [("Network", 2)]
    [(username, email, role, active, password_hash)] = cli.query(
        "SELECT username, email, role, active, password_hash FROM users")
    assert (username, email, role, active) == ("nina", "nina@example.test", "agent", 1)
    assert password_hash and "correct horse" not in password_hash
    assert cli.query("SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id "
                     "JOIN users u ON u.id = m.user_id WHERE u.username = 'nina'") == [
        ("Network",)]


def test_users_token_prints_the_token_alone_and_it_works_as_a_bearer_token(cli, cli_app):
    with cli_app.app_context():
        identity.create_group(None, "Desk", 1)
        identity.create_user(None, "tom", "tom@example.test", "agent", groups=["Desk"])
    result = cli.run("users", "token", "tom")
    assert result.returncode == 0, result.stderr
    token = result.stdout.removesuffix("\n")
    assert result.stdout == token + "\n"
    assert "\n" not in token and " " not in token and token.startswith("sdk_")
    assert len(token) >= 40
    with cli_app.app_context():
        client = cli_app.test_client()
        response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.get_json()["username"] == "tom"
        response = client.post("/api/v1/incidents", json={"title": "From a script"},
                               headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201
    # A second token is a different one; both work.
    second = cli.ok("users", "token", "tom").strip()
    assert second != token


def test_api_tokens_are_stored_hashed(cli, cli_app):
    with cli_app.app_context():
        identity.create_user(None, "tom", "tom@example.test", "requester")
    token = cli.ok("users", "token", "tom", "--name", "laptop").strip()
    rows = cli.query("SELECT * FROM api_tokens")
    assert len(rows) == 1
    assert not any(token in str(value) or token[4:] in str(value) for value in rows[0])
    assert cli.query("SELECT token_hash, name FROM api_tokens") == [
        (hashlib.sha256(token.encode()).hexdigest(), "laptop")]


def test_the_cli_refuses_a_bad_role_clearly_and_creates_nothing(cli):
    result = cli.run("users", "create", "eve", "--email", "eve@example.test", "--role", "wizard")
    assert result.returncode != 0
    assert "--role" in result.stderr and "wizard" in result.stderr
    assert "agent" in result.stderr  # the choices are named
    assert "Traceback" not in result.stderr
    assert cli.count("users") == 0


def test_the_cli_refuses_an_unknown_group_clearly_and_creates_nothing(cli):
    result = cli.run("users", "create", "eve", "--email", "eve@example.test", "--role", "agent",
                     "--group", "Nowhere")
    assert result.returncode != 0
    assert "Nowhere" in result.stderr and "group" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert cli.count("users") == 0


def test_the_cli_refuses_a_duplicate_group_clearly(cli, cli_app):
    with cli_app.app_context():
        identity.create_group(None, "Ops", 1)
    result = cli.run("groups", "create", "Ops", "--line", "2")
    assert result.returncode != 0
    assert "Ops" in result.stderr and "Traceback" not in result.stderr
    assert cli.query("SELECT name, support_line FROM groups") == [("Ops", 1)]


def test_users_token_for_an_unknown_user_prints_nothing_on_stdout(cli):
    result = cli.run("users", "token", "nobody")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "nobody" in result.stderr and "Traceback" not in result.stderr


def test_demo_twice_is_idempotent(cli):
    first = cli.ok("demo")
    counts = {table: cli.count(table) for table in (
        "users", "groups", "group_members", "categories", "tickets", "ticket_comments",
        "ticket_audit", "api_tokens")}
    assert counts["users"] == 8  # 7 + the VIP demo requester
    kinds = dict(cli.query("SELECT kind, count(*) FROM tickets GROUP BY kind"))
    # Incidents (one came in by e-mail), a known error, a scheduled change, a laptop
    # request awaiting the manager's approval.
    assert kinds == {"incident": 4, "problem": 1, "change": 1, "request": 1}, kinds
    # The change was approved by the manager; the laptop waits for them.
    assert sorted(cli.query("SELECT status FROM approvals")) == [("approved",), ("pending",)]
    second = cli.ok("demo")
    assert second == first  # the logins are printed again
    assert {table: cli.count(table) for table in counts} == counts
    assert "admin" in first and "employee" in first


def test_users_deactivate_kills_api_tokens_at_once(cli, cli_app):
    with cli_app.app_context():
        user = identity.create_user(None, "tom", "tom@example.test", "agent")
        token = identity.issue_token(user)
        client = cli_app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/me", headers=headers).status_code == 200
        db.session.remove()
        assert "tom" in cli.ok("users", "deactivate", "tom")
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
    assert cli.query("SELECT active FROM users WHERE username = 'tom'") == [(0,)]
    assert cli.query("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL") == [(0,)]


# --- deactivation through the API (both back ends) ------------------------------------------


def test_an_admin_deactivating_a_user_through_the_api_kills_their_tokens_at_once(world, desk):
    victim_api, other_api = world.api(desk.agent), world.api(desk.agent)
    assert victim_api.get("/me").status_code == 200
    epoch = desk.agent.session_epoch
    response = world.api(desk.admin).patch("/users/agent1", json={"active": False})
    assert response.status_code == 200
    assert response.get_json()["active"] is False
    for api in (victim_api, other_api):
        assert api.get("/me").status_code == 401
        assert api.get("/incidents").status_code == 401
    # Their browser sessions end too: a session from the old epoch loads nobody.
    assert identity.load_session_user(f"{desk.agent.id}:{epoch}") is None
    assert identity.load_session_user(f"{desk.agent.id}:{epoch + 1}") is None


def test_reactivation_does_not_bring_old_tokens_back(world, desk):
    api = world.api(desk.agent)
    admin = world.api(desk.admin)
    admin.patch("/users/agent1", json={"active": False})
    assert admin.patch("/users/agent1", json={"active": True}).get_json()["active"] is True
    assert api.get("/me").status_code == 401
    assert world.api(desk.agent).get("/me").status_code == 200


def test_an_admin_cannot_deactivate_themselves(world, desk):
    admin = world.api(desk.admin)
    response = admin.patch("/users/root", json={"active": False})
    assert response.status_code == 409
    assert admin.get("/me").status_code == 200


def test_no_token_is_issued_to_a_deactivated_user(world, desk):
    from servicedesk.errors import Conflict

    identity.deactivate_user(None, desk.agent)
    with pytest.raises(Conflict):
        identity.issue_token(desk.agent)


def test_a_deactivated_user_is_no_longer_assignable_but_keeps_their_history(world, desk):
    number = world.incident(desk.employee)["number"]
    world.api(desk.agent).post(f"/incidents/{number}/comments", json={"body": "On it"})
    world.api(desk.admin).patch("/users/agent1", json={"active": False})
    comments = world.api(desk.admin).get(f"/incidents/{number}/comments").get_json()
    assert comments[0]["author"] == "agent1"
    response = world.api(desk.admin).post(f"/incidents/{number}/transition",
                                          json={"to": "assigned", "assignee": "agent1"})
    assert response.status_code == 422


# --- creating users and groups through the API -------------------------------------------------


def test_an_admin_creates_a_user_with_groups_through_the_api(world, desk):
    response = world.api(desk.admin).post("/users", json={
        "username": "nina", "email": "nina@example.com", "role": "agent",
        "groups": ["Network Team"], "display_name": "Nina N", "timezone": "Europe/Berlin",
        "locale": "ru"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["username"], body["groups"], body["timezone"], body["locale"]) == (
        "nina", ["Network Team"], "Europe/Berlin", "ru")
    assert "password" not in body and "password_hash" not in body


@pytest.mark.parametrize("extra, field", [
    ({"timezone": "Mars/Phobos"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"locale": "xx"}, "locale"),
    ({"groups": ["No Such Group"]}, "groups"),
    ({"groups": "Network Team"}, "groups"),
    ({"role": "root"}, "role"),
    ({"username": "bad name"}, "username"),
    ({"email": "not-an-address"}, "email"),
    ({"password": "short"}, "password"),
])
def test_creating_a_user_with_a_bad_field_is_a_422_naming_it(world, desk, extra, field):
    response = world.api(desk.admin).post("/users", json={
        "username": "nina", "email": "nina@example.com", "role": "agent", **extra})
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    assert identity.get_user("nina") is None and identity.get_user("bad name") is None


def test_a_taken_username_is_a_409(world, desk):
    response = world.api(desk.admin).post("/users", json={
        "username": "agent1", "email": "x@example.com", "role": "agent"})
    assert response.status_code == 409
    assert "username" in response.get_json()["error"]["fields"]
