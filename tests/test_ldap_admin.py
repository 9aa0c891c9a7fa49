"""Administering the directory connection: the settings API (validated on save, the bind
password write-only, versions), the connection test (failover, TLS with and without
certificate validation), the sync and its reports over the API, the admin pages and the
``servicedesk ldap`` commands — against the real slapd, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess

import pytest
from conftest import SERVICEDESK, empty_database, make_app
from sqlalchemy import select

import ldap_server as ls
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.ldap import service
from servicedesk.ldap.models import LdapConfig

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def slapd():
    server = ls.shared_server()
    yield server
    ls.stop_shared_server()


@pytest.fixture
def admin(world):
    return world.user("admin", "boss")


@pytest.fixture
def api(world, admin):
    return world.api(admin)


def body(slapd, **overrides) -> dict:
    return ls.settings(slapd, max_deactivate_percent=100, **overrides)


def saved(api, slapd, **overrides) -> dict:
    response = api.put("/admin/ldap/config", json=body(slapd, **overrides))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- settings ----------------------------------------------------------------------------------


def test_settings_first_save_write_only_password_and_versions(api, slapd):
    shown = api.get("/admin/ldap/config").get_json()
    assert (shown["version"], shown["enabled"], shown["bind_password_set"]) == (0, False, False)
    assert shown["id_attribute"] == "entryUUID" and shown["attributes"]["username"] == "uid"
    stored = saved(api, slapd)  # the first save needs no version
    assert (stored["version"], stored["enabled"], stored["bind_dn"]) == (1, True, ls.SYNC_DN)
    assert stored["bind_password_set"] is True
    for text in (json.dumps(stored), api.get("/admin/ldap/config").get_data(as_text=True),
                 api.client.get("/api/v1/openapi.json").get_data(as_text=True)):
        assert ls.SYNC_PASSWORD not in text
    # Leaving the password out keeps it; the connection still binds.
    changed = api.put("/admin/ldap/config", json={"page_size": 200, "version": 1}).get_json()
    assert (changed["page_size"], changed["bind_password_set"]) == (200, True)
    assert db.session.get(LdapConfig, 1).bind_password == ls.SYNC_PASSWORD
    assert api.post("/admin/ldap/test").get_json()["ok"] is True
    stale = api.put("/admin/ldap/config", json={"page_size": 300, "version": 1})
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "stale_version"
    assert api.put("/admin/ldap/config", json={"page_size": 300}).status_code == 422


INVALID = [
    ({"server_uris": ["http://dc1"]}, "server_uris", "not an ldap:// or ldaps:// URI"),
    ({"server_uris": []}, "server_uris", "At least one"),
    ({"security": "ldaps"}, "server_uris", "does not fit security ldaps"),
    ({"user_base_dn": "not a dn"}, "user_base_dn", "Not a distinguished name"),
    ({"user_filter": "objectClass=person"}, "user_filter", "Not one LDAP filter"),
    ({"user_filter": "(a=1)(b=2)"}, "user_filter", "Not one LDAP filter"),
    ({"disabled_filter": "(&(a=1)"}, "disabled_filter", "Not one LDAP filter"),
    ({"ca_file": "/nonexistent/ca.pem"}, "ca_file", "No readable file"),
    ({"ca_file": "relative.pem"}, "ca_file", "absolute path"),
    ({"bind_password": ""}, "bind_password", "Required with a bind DN"),
    ({"attributes": {"email": "mail"}}, "attributes", "username must name"),
    ({"attributes": {"username": "u id"}}, "attributes", "not an attribute name"),
    ({"change_attribute": "entryCSN"}, "change_attribute", "One of"),
    ({"group_mappings": [{"ldap_group": "cn=x,dc=y", "group": "Nope"}]}, "group_mappings",
     "no servicedesk group 'Nope'"),
    ({"group_mappings": [{"ldap_group": "cn=x,dc=y"}]}, "group_mappings",
     "a servicedesk group, a role or both"),
    ({"group_mappings": [{"ldap_group": "cn=x,dc=y", "role": "boss"}]}, "group_mappings", ""),
    ({"sync_interval_minutes": 2}, "sync_interval_minutes", "0 (no schedule) or 5"),
    ({"page_size": 5000}, "page_size", ""),
    ({"default_role": "admin"}, "default_role", ""),
    ({"max_deactivate_percent": -1}, "max_deactivate_percent", ""),
    ({"flavour": "novell"}, "flavour", ""),
    ({"surprise": 1}, "surprise", ""),
    ({"timeout_seconds": "10"}, "timeout_seconds", ""),
]


def test_invalid_settings_are_refused_naming_the_field_and_change_nothing(api, slapd):
    saved(api, slapd)
    wrong = []
    for change, field, reason in INVALID:
        response = api.put("/admin/ldap/config", json={**body(slapd), **change, "version": 1})
        fields = (response.get_json().get("error") or {}).get("fields", {})
        if response.status_code != 422 or reason not in " ".join(fields.get(field, ["-"])):
            wrong.append((change, response.status_code, fields))
    assert not wrong
    db.session.expire_all()
    assert db.session.get(LdapConfig, 1).version == 1


def test_only_admins_administer_the_directory_and_presets(api, world, slapd):
    agent = world.api(world.user("agent", "agent1"))
    requester = world.api(world.user("requester", "emma"))
    for other in (agent, requester):
        assert other.get("/admin/ldap/config").status_code == 403
        assert other.put("/admin/ldap/config", json=body(slapd)).status_code == 403
        assert other.post("/admin/ldap/test").status_code == 403
        assert other.post("/admin/ldap/sync").status_code == 403
        assert other.get("/admin/ldap/reports").status_code == 403
        assert other.get("/admin/ldap/presets/ad").status_code == 403
    assert world.api(None).get("/admin/ldap/config").status_code == 401
    ad = api.get("/admin/ldap/presets/ad").get_json()["values"]
    assert (ad["id_attribute"], ad["change_attribute"], ad["attributes"]["username"]) == (
        "objectGUID", "uSNChanged", "sAMAccountName")
    assert api.get("/admin/ldap/presets/openldap").get_json()["values"]["id_attribute"] == (
        "entryUUID")
    assert api.get("/admin/ldap/presets/novell").status_code == 404
    assert api.post("/admin/ldap/sync", json={}).get_json()["error"]["code"] == "not_configured"


# --- the connection test -------------------------------------------------------------------------


def test_connection_test_reports_each_step_fails_over_and_saves_nothing(api, slapd):
    dead = f"ldap://127.0.0.1:{ls.free_port()}"
    saved(api, slapd, server_uris=[dead, slapd.uri],
          group_mappings=[{"ldap_group": ls.group_dn("admins"), "role": "admin"}])
    result = api.post("/admin/ldap/test").get_json()
    assert (result["ok"], result["server"], result["warnings"]) == (True, slapd.uri, [])
    steps = {s["step"]: s for s in result["steps"]}
    assert set(steps) == {"connect", "server", "users", "mapping", "groups"}
    assert "StartTLS" in steps["connect"]["detail"] and "OpenLDAP" in steps["server"]["detail"]
    assert "10 users found" in steps["users"]["detail"]
    assert "username shirin" in steps["mapping"]["detail"]
    alone = api.post("/admin/ldap/test", json={"server_uris": [dead]}).get_json()
    assert alone["ok"] is False and dead in alone["steps"][0]["detail"]
    wrong = api.post("/admin/ldap/test", json={"bind_password": "wrong"}).get_json()
    assert wrong["ok"] is False and "invalidCredentials" in wrong["steps"][0]["detail"]
    assert db.session.get(LdapConfig, 1).bind_password == ls.SYNC_PASSWORD
    bad = api.post("/admin/ldap/test", json={"user_filter": "nope"})
    assert bad.status_code == 422 and "user_filter" in bad.get_json()["error"]["fields"]


def test_certificates_are_validated_unless_an_admin_opts_out_which_is_logged(
        api, slapd, caplog):
    saved(api, slapd, security="ldaps", server_uris=[slapd.ldaps_uri])
    assert api.post("/admin/ldap/test").get_json()["ok"] is True  # our CA: trusted
    starttls = api.post("/admin/ldap/test", json={"security": "starttls",
                                                  "server_uris": [slapd.uri]}).get_json()
    assert starttls["ok"] is True
    # The system's CAs do not know the test CA: refused, for LDAPS and StartTLS alike.
    for draft in ({"ca_file": ""}, {"ca_file": "", "security": "starttls",
                                    "server_uris": [slapd.uri]}):
        refused = api.post("/admin/ldap/test", json=draft).get_json()
        assert refused["ok"] is False
        assert "certificate" in refused["steps"][0]["detail"].lower()
    with caplog.at_level(logging.WARNING, logger="servicedesk.ldap"):
        optout = api.post("/admin/ldap/test", json={"ca_file": "",
                                                    "tls_verify": False}).get_json()
    assert optout["ok"] is True and "validation is off" in optout["warnings"][0]
    assert any("certificate validation is switched off" in r.getMessage()
               for r in caplog.records)
    with caplog.at_level(logging.WARNING, logger="servicedesk.ldap"):
        api.put("/admin/ldap/config", json={"tls_verify": False, "version": 1})
    assert any("switched certificate validation off" in r.getMessage() and "boss" in
               r.getMessage() for r in caplog.records)
    plain = api.post("/admin/ldap/test", json={"security": "plain",
                                               "server_uris": [slapd.uri]}).get_json()
    assert plain["ok"] is True and "clear text" in plain["warnings"][0]


# --- sync and reports over the API ----------------------------------------------------------------


def test_sync_dry_run_and_reports_over_the_api(api, slapd):
    saved(api, slapd)
    dry = api.post("/admin/ldap/sync", json={"dry_run": True})
    assert dry.status_code == 200
    assert (dry.get_json()["status"], dry.get_json()["dry_run"], dry.get_json()["created"]) == (
        "ok", True, 9)
    run = api.post("/admin/ldap/sync", json={}).get_json()
    assert (run["status"], run["created"], run["actor"], run["trigger"]) == ("ok", 9, "boss",
                                                                             "api")
    listed = api.get("/admin/ldap/reports").get_json()
    assert [r["id"] for r in listed] == [run["id"], dry.get_json()["id"]]
    detail = api.get(f"/admin/ldap/reports/{run['id']}?action=created&limit=5").get_json()
    assert len(detail["items"]) == 5 and detail["next_after"] is not None
    rest = api.get(f"/admin/ldap/reports/{run['id']}?action=created&after="
                   f"{detail['next_after']}").get_json()
    names = {i["username"] for i in detail["items"] + rest["items"]}
    assert len(names) == 9 and rest["next_after"] is None
    assert all(i["dn"].endswith(ls.STAFF) for i in detail["items"])
    assert api.get("/admin/ldap/reports/999999").status_code == 404
    assert api.get("/admin/ldap/reports?limit=0").status_code == 400
    assert api.get(f"/admin/ldap/reports/{run['id']}?action=nonsense").status_code == 400
    assert api.post("/admin/ldap/sync", json={"dry_run": "maybe"}).status_code == 422


# --- admin pages ------------------------------------------------------------------------


def page_client(app, username, password="page password"):
    client = app.test_client()
    token = _TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"csrf_token": token, "username": username,
                                           "password": password})
    assert response.status_code == 302
    return client


def form_of(client, slapd, **overrides) -> dict:
    """The settings form as a browser would post it."""
    html = client.get("/admin/ldap").get_data(as_text=True)
    values = body(slapd, **overrides)
    form = {"csrf_token": _TOKEN.search(html).group(1), "enabled": "on", "tls_verify": "on",
            "server_uris": "\n".join(values["server_uris"])}
    for key in ("flavour", "security", "ca_file", "bind_dn", "bind_password", "user_base_dn",
                "user_filter", "disabled_filter", "group_base_dn", "group_filter",
                "group_member_attribute", "id_attribute", "change_attribute", "default_role"):
        form[key] = values[key]
    for key in ("timeout_seconds", "page_size", "sync_interval_minutes",
                "max_deactivate_percent"):
        form[key] = str(values.get(key, 10))
    for key, attr in values["attributes"].items():
        form[f"attr_{key}"] = attr
    version = re.search(r'name="version" value="(\d*)"', html).group(1)
    form["version"] = version
    for index in range(3):
        form.update({f"map_dn_{index}": "", f"map_group_{index}": "", f"map_role_{index}": ""})
    return form


def test_admin_pages_save_test_and_sync(app, world, slapd):
    world.user("admin", "boss", password="page password")
    client = page_client(app, "boss")
    assert client.get("/admin/ldap").status_code == 200
    form = form_of(client, slapd)
    form.update({"map_dn_0": ls.group_dn("admins"), "map_role_0": "admin"})
    tested = client.post("/admin/ldap/test", data=form)
    assert tested.status_code == 200 and 'data-ok="true"' in tested.get_data(as_text=True)
    assert db.session.get(LdapConfig, 1) is None  # a test saves nothing
    bad = client.post("/admin/ldap", data={**form, "user_filter": "broken"})
    assert bad.status_code == 422 and "Not one LDAP filter" in bad.get_data(as_text=True)
    saved_page = client.post("/admin/ldap", data=form)
    assert saved_page.status_code == 302
    config = db.session.get(LdapConfig, 1)
    assert (config.version, config.group_mappings) == (1, [
        {"ldap_group": ls.group_dn("admins"), "group": "", "role": "admin"}])
    html = client.get("/admin/ldap").get_data(as_text=True)
    assert ls.SYNC_PASSWORD not in html and "stored; never shown" in html
    # Saving again without typing the password keeps it.
    form = form_of(client, slapd, bind_password="")
    form.update({"map_dn_0": ls.group_dn("admins"), "map_role_0": "admin"})
    assert client.post("/admin/ldap", data=form).status_code == 302
    assert db.session.get(LdapConfig, 1).bind_password == ls.SYNC_PASSWORD
    token = _TOKEN.search(client.get("/admin/ldap").get_data(as_text=True)).group(1)
    dry = client.post("/admin/ldap/sync", data={"csrf_token": token, "dry_run": "1"})
    assert dry.status_code == 302 and "/admin/ldap/reports/" in dry.headers["Location"]
    report_page = client.get(dry.headers["Location"]).get_data(as_text=True)
    assert "dry run" in report_page and "uid=shirin," in report_page
    assert db.session.scalars(select(User).where(User.auth_source == "ldap")).first() is None
    run = client.post("/admin/ldap/sync", data={"csrf_token": token, "dry_run": "0"})
    report_page = client.get(run.headers["Location"]).get_data(as_text=True)
    assert "Борис Петров" not in report_page  # usernames and DNs, not display names
    assert "boris" in report_page and "role admin" in report_page
    listing = client.get("/admin/ldap/reports").get_data(as_text=True)
    assert listing.count("data-report=") == 2
    preset = client.post("/admin/ldap/preset", data={**form_of(client, slapd), "flavour": "ad"})
    assert preset.status_code == 200 and 'value="sAMAccountName"' in preset.get_data(as_text=True)
    assert db.session.get(LdapConfig, 1).flavour == "openldap"  # not saved
    for path in ("/admin/ldap", "/admin/ldap/reports", run.headers["Location"]):
        page = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script|<style|\sstyle=|\son\w+=", page), path
        assert len(_TOKEN.findall(page)) == page.count("<form"), path


def test_admin_pages_do_not_exist_for_others_and_need_csrf(app, world, slapd):
    world.user("agent", "agent1", password="page password")
    client = page_client(app, "agent1")
    for path in ("/admin/ldap", "/admin/ldap/reports", "/admin/ldap/reports/1"):
        assert client.get(path).status_code == 404
    assert "/admin/ldap" not in client.get("/console").get_data(as_text=True)
    assert app.test_client().get("/admin/ldap").status_code == 302  # sign in first
    world.user("admin", "boss", password="page password")
    client = page_client(app, "boss")
    form = form_of(client, slapd)
    form.pop("csrf_token")
    assert client.post("/admin/ldap", data=form).status_code == 400
    assert db.session.get(LdapConfig, 1) is None


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def cli_app(sqlite_url):
    """The command line is what is tested, not the database (like tests/test_identity.py):
    on the session's SQLite database only, emptied afterwards."""
    app = make_app(sqlite_url)
    with app.app_context():
        yield app
        db.session.rollback()
        empty_database()
        db.session.remove()
        db.engine.dispose()


def test_the_ldap_commands(cli_app, slapd, tmp_path):
    settings_file = tmp_path / "ldap.json"
    settings_file.write_text(json.dumps(body(slapd)))
    db.session.rollback()  # the commands need SQLite's write lock
    env = {**os.environ, "SERVICEDESK_DATABASE_URL": cli_app.config["SQLALCHEMY_DATABASE_URI"],
           "SERVICEDESK_SECRET_KEY": "ldap-cli-test"}
    env.pop("SERVICEDESK_REDIS_URL", None)

    def run(*args):
        return subprocess.run([SERVICEDESK, "ldap", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    configured = run("config", "--file", str(settings_file))
    assert configured.returncode == 0, configured.stderr
    assert "saved" in configured.stdout and ls.SYNC_PASSWORD not in configured.stdout
    tested = run("test")
    assert tested.returncode == 0 and "ok   connect" in tested.stdout, tested.stdout
    dry = run("sync", "--dry-run")
    assert dry.returncode == 0 and "ok (dry run), full" in dry.stdout and "created 9" in dry.stdout
    real = run("sync")
    assert real.returncode == 0 and "created 9" in real.stdout, real.stdout + real.stderr
    db.session.expire_all()
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 9
