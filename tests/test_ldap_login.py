"""Directory users sign in with their directory password (a bind as them after a search
by escaped username), against the real slapd; local sign-in (the break-glass admin)
never depends on the directory. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess

import ldap3
import pytest
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

import ldap_server as ls
from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.identity.models import LoginFailure, User
from servicedesk.ldap import directory, login, service
from servicedesk.ldap.models import LdapAccount

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
LOCAL_PASSWORD = "local admin pw"


@pytest.fixture(scope="session")
def slapd():
    server = ls.shared_server()
    yield server
    ls.stop_shared_server()


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    """Local passwords hashed with few rounds: signing in is what is tested, not the KDF."""
    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def synced(app, world, slapd):
    """ou=staff synced, and a local admin "boss" (no clash with the directory)."""
    world.user("admin", "boss", password=LOCAL_PASSWORD)
    service.update_config(None, ls.settings(slapd, max_deactivate_percent=100))
    report = service.start_sync(None, "cli", run_here=True)
    assert report.status == "ok"
    db.session.expire_all()
    return slapd


def sign_in(app, username, password):
    client = app.test_client()
    page = client.get("/login")
    token = _TOKEN.search(page.get_data(as_text=True)).group(1)
    response = client.post("/login", data={"csrf_token": token, "username": username,
                                           "password": password})
    return client, response


def user(username) -> User:
    return db.session.scalars(select(User).where(User.username == username)).one()


def failures() -> int:
    return db.session.scalar(select(func.count()).select_from(LoginFailure))


def test_a_directory_user_signs_in_with_the_directory_password(app, synced):
    client, response = sign_in(app, "alice", ls.PASSWORD)
    assert response.status_code == 302
    assert client.get("/portal").status_code == 200
    assert sign_in(app, "ALICE", ls.PASSWORD)[1].status_code == 302  # as the directory
    _client, wrong = sign_in(app, "alice", "not the password")
    assert wrong.status_code == 401
    assert "Unknown username or wrong password" in wrong.get_data(as_text=True)
    client, response = sign_in(app, "shirin", ls.PASSWORD)
    assert response.status_code == 302
    assert "شیرین احمدی" in client.get("/portal").get_data(as_text=True)


def test_an_empty_password_never_signs_in(app, synced):
    """A bind with a DN and no password is an "unauthenticated bind" that this server
    (like Active Directory) answers with success: it must never count as a sign-in."""
    server_says = subprocess.run(["ldapwhoami", "-x", "-H", synced.uri, "-D",
                                  ls.staff_dn("alice"), "-w", ""], capture_output=True,
                                 text=True, timeout=30)
    assert (server_says.returncode, server_says.stdout.strip()) == (0, "anonymous")
    _client, response = sign_in(app, "alice", "")
    assert response.status_code == 401  # what we say
    assert login.directory_password_ok(user("alice"), "") is False
    settings = directory.Settings.from_config(service.load_config())
    assert directory.bind_as(settings, ls.staff_dn("alice"), "") is False


INJECTIONS = ["*", "al*", "*)(uid=*", "alice)(|(uid=*", "alice)(objectClass=*", "\\2a",
              "*\\", "alice\x00", "(uid=alice)", "*)(|(objectClass=*)", "a*e", "alic?"]


def test_filter_injection_matches_no_one(app, synced):
    """0 wider matches: each value is escaped, so ``*`` or ``)(`` are only characters."""
    config = service.load_config()
    with directory.Directory(directory.Settings.from_config(config)) as d:
        assert login.find_user_dn(config, d, "alice", None) == ls.staff_dn("alice")
        wider = {name: login.find_user_dn(config, d, name, None) for name in INJECTIONS}
    assert wider == {name: None for name in INJECTIONS}
    assert login.user_filter(config, "*)(uid=*") == (
        r"(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))")
    for name in ("*", "*)(uid=*", "alice\x00"):  # the page: no such user here at all
        _client, response = sign_in(app, name, ls.PASSWORD)
        assert response.status_code in (401, 422), name  # 422: a NUL is refused outright


def test_who_cannot_sign_in(app, synced):
    """Disabled in the directory (even before the next sync), deactivated here (and the
    session ends), or someone else now holding the username in the directory."""
    admin = synced.admin()
    try:
        admin.modify(ls.staff_dn("carol"), {"employeeType": [(ldap3.MODIFY_REPLACE, ["disabled"])]})
        assert user("carol").active  # not synced yet
        assert sign_in(app, "carol", ls.PASSWORD)[1].status_code == 401
    finally:
        admin.modify(ls.staff_dn("carol"), {"employeeType": [(ldap3.MODIFY_DELETE, [])]})
        admin.unbind()
    assert sign_in(app, "carol", ls.PASSWORD)[1].status_code == 302

    client, response = sign_in(app, "bob", ls.PASSWORD)
    assert response.status_code == 302
    identity.deactivate_user(None, user("bob"))
    assert client.get("/portal").status_code == 302  # back to the sign-in page
    assert sign_in(app, "bob", ls.PASSWORD)[1].status_code == 401

    # The account is tied to the entry's stable id: an entry re-created under the same
    # name (another entryUUID) is someone else until the sync says otherwise.
    account = db.session.get(LdapAccount, user("alice").id)
    account.directory_id = "00000000-0000-0000-0000-000000000000"
    db.session.commit()
    assert sign_in(app, "alice", ls.PASSWORD)[1].status_code == 401


def test_the_local_admin_signs_in_whatever_the_directory_does(app, synced):
    """Break-glass: local sign-in never asks the directory."""
    config = service.load_config()
    service.update_config(None, {"server_uris": [f"ldap://127.0.0.1:{ls.free_port()}"],
                                 "version": config.version})
    assert sign_in(app, "boss", LOCAL_PASSWORD)[1].status_code == 302
    before = failures()
    assert sign_in(app, "alice", ls.PASSWORD)[1].status_code == 401  # like any failure
    assert failures() == before  # an unreachable directory is not the user's fault
    config = service.load_config()
    service.update_config(None, {"server_uris": [synced.uri], "enabled": False,
                                 "version": config.version})
    assert sign_in(app, "alice", ls.PASSWORD)[1].status_code == 401  # switched off
    assert sign_in(app, "boss", LOCAL_PASSWORD)[1].status_code == 302


def test_failed_directory_sign_ins_are_throttled_like_local_ones(app, synced):
    limit = app.config["SERVICEDESK_LOGIN_MAX_PER_USER"]
    for _ in range(limit):
        assert sign_in(app, "david", "wrong password")[1].status_code == 401
    assert sign_in(app, "david", ls.PASSWORD)[1].status_code == 429
