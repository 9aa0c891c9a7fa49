"""Plugin administration: admins list, enable, disable and configure plugins from the
API, the web and the CLI; the state is in the database, so another process follows it
without a restart; secrets are never shown back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from marshmallow import Schema, fields, validate
from sd_test_recorder import recorder

from servicedesk.cli import main as cli
from servicedesk.extensions import db
from servicedesk.plugin_admin import PluginState, list_plugins
from servicedesk.plugins import hookimpl, plugin_manager, plugin_settings

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = "hunter2-very-secret"


@pytest.fixture
def events(app):
    recorder.EVENTS.clear()
    yield recorder.EVENTS
    recorder.EVENTS.clear()


class Configurable:
    """A plugin registered for a test, with a settings schema and a secret."""

    class Settings(Schema):
        url = fields.Url(required=True)
        timeout_seconds = fields.Integer(load_default=10, validate=validate.Range(1, 60))
        token = fields.String(metadata={"secret": True})

    @hookimpl
    def servicedesk_settings_schema(self):
        return self.Settings


@pytest.fixture
def configurable(app):
    pm = plugin_manager()
    pm.register(Configurable(), name="configurable")
    yield "configurable"
    pm.unregister(name="configurable")


def _created(events) -> list:
    return [e for e in events if e[0] == "created"]


def test_admins_list_plugins_with_version_hooks_state_and_health(world, desk):
    response = world.api(desk.admin).get("/admin/plugins")
    assert response.status_code == 200
    plugins = {p["name"]: p for p in response.get_json()["items"]}
    assert {"recorder", "exploder", "email", "vip_sla"} <= set(plugins)
    rec = plugins["recorder"]
    assert rec["version"] == "1.0.0"
    assert rec["enabled"] is True and rec["healthy"] is True and rec["loaded"] is True
    assert "servicedesk_ticket_created" in rec["hooks"]


def test_a_failing_plugin_shows_as_unhealthy_with_its_last_error(world, desk, monkeypatch):
    from sd_test_recorder import exploder

    monkeypatch.setattr(exploder, "ARMED", True)
    world.incident(desk.employee)
    body = world.api(desk.admin).get("/admin/plugins/exploder").get_json()
    assert body["healthy"] is False and body["failures"] == 1
    assert "failed on purpose" in body["last_error"]


def test_disabling_stops_the_hooks_and_enabling_restarts_them(world, desk, events):
    admin = world.api(desk.admin)
    response = admin.post("/admin/plugins/recorder/disable")
    assert response.status_code == 200 and response.get_json()["enabled"] is False
    world.incident(desk.employee)
    assert _created(events) == []
    assert admin.post("/admin/plugins/recorder/enable").get_json()["enabled"] is True
    number = world.incident(desk.employee)["number"]
    assert _created(events) == [("created", number, "emma")]


SUBPROCESS = textwrap.dedent("""
    import json, sys
    from sd_test_recorder import recorder
    from servicedesk.app import create_app
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": sys.argv[1],
                      "SECRET_KEY": "x", "SERVICEDESK_REDIS_URL": None})
    response = app.test_client().post("/api/v1/incidents", json={"title": "Elsewhere"},
                                      headers={"Authorization": "Bearer " + sys.argv[2]})
    assert response.status_code == 201, response.get_json()
    print(json.dumps([list(e) for e in recorder.EVENTS]))
""")


def _create_in_another_process(app, token) -> list:
    db.session.commit()  # hold no transaction (nor SQLite lock) while the other writes
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, app.config["SQLALCHEMY_DATABASE_URI"], token],
        capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_another_process_follows_the_enabled_state_without_restart(app, world, desk):
    from servicedesk.identity import service as identity

    token = identity.issue_token(desk.employee)
    admin = world.api(desk.admin)
    assert admin.post("/admin/plugins/recorder/disable").status_code == 200
    assert [e for e in _create_in_another_process(app, token) if e[0] == "created"] == []
    assert admin.post("/admin/plugins/recorder/enable").status_code == 200
    seen = _create_in_another_process(app, token)
    assert [e[0] for e in seen if e[0] == "created"] == ["created"]


def test_the_cli_disables_and_this_process_follows(app, world, desk, events):
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["plugins", "disable", "recorder"])
    assert result.exit_code == 0, result.output
    world.incident(desk.employee)
    assert _created(events) == []
    listing = runner.invoke(cli, ["plugins", "list"])
    assert re.search(r"^recorder\t1\.0\.0\tdisabled", listing.output, re.M), listing.output
    assert runner.invoke(cli, ["plugins", "enable", "recorder"]).exit_code == 0
    world.incident(desk.employee)
    assert len(_created(events)) == 1
    unknown = runner.invoke(cli, ["plugins", "enable", "no_such_plugin"])
    assert unknown.exit_code == 1 and "no_such_plugin" in unknown.output


def test_settings_are_validated_by_the_plugins_schema_naming_the_field(world, desk,
                                                                       configurable):
    admin = world.api(desk.admin)
    bad = admin.put("/admin/plugins/configurable/settings",
                    json={"url": "not a url", "timeout_seconds": 600})
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"url", "timeout_seconds"}
    unknown = admin.put("/admin/plugins/configurable/settings",
                        json={"url": "https://hooks.example.test/x", "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.get_json()["error"]["fields"]
    assert db.session.get(PluginState, "configurable") is None  # nothing changed
    odd = admin.request("PUT", "/admin/plugins/configurable/settings",
                        data='{"timeout_seconds": NaN}', content_type="application/json")
    assert odd.status_code == 422 and "timeout_seconds" in odd.get_json()["error"]["fields"]
    for body in ([1, 2], "text", None):
        assert admin.put("/admin/plugins/configurable/settings", json=body).status_code == 422
    none = admin.put("/admin/plugins/recorder/settings", json={"x": 1})
    assert none.status_code == 422 and "settings" in none.get_json()["error"]["fields"]


def test_secrets_are_stored_for_the_plugin_but_never_shown(app, world, desk, configurable):
    admin = world.api(desk.admin)
    saved = admin.put("/admin/plugins/configurable/settings",
                      json={"url": "https://hooks.example.test/x", "token": SECRET})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["settings"] == {"url": "https://hooks.example.test/x",
                                            "timeout_seconds": 10, "token": "set"}
    assert SECRET not in admin.get("/admin/plugins").get_data(as_text=True)
    assert SECRET not in admin.get("/admin/plugins/configurable").get_data(as_text=True)
    # a save without the secret keeps it
    again = admin.put("/admin/plugins/configurable/settings", json={"timeout_seconds": 30})
    assert again.get_json()["settings"]["token"] == "set"
    assert plugin_settings("configurable") == {
        "url": "https://hooks.example.test/x", "timeout_seconds": 30, "token": SECRET}
    shown = app.test_cli_runner().invoke(cli, ["plugins", "settings", "configurable"])
    assert "token=set" in shown.output and SECRET not in shown.output


def test_only_admins_manage_plugins(world, desk, configurable):
    for user in (desk.agent, desk.manager, desk.employee):
        api = world.api(user)
        assert api.get("/admin/plugins").status_code == 403
        assert api.post("/admin/plugins/recorder/disable").status_code == 403
        assert api.put("/admin/plugins/configurable/settings",
                       json={"url": "https://x.example.test"}).status_code == 403
    assert world.api(None).get("/admin/plugins").status_code == 401
    assert world.api(desk.admin).get("/admin/plugins/recorder").get_json()["enabled"] is True
    assert world.api(desk.admin).get("/admin/plugins/nope").status_code == 404


def page_client(app, world, username):
    world.user("admin" if username == "pageadmin" else "agent", username,
               password="page password")
    client = app.test_client()
    token = _TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"csrf_token": token, "username": username,
                                           "password": "page password"})
    assert response.status_code == 302
    return client


def test_the_admin_page_lists_toggles_and_configures_with_csrf(app, world, desk,
                                                                configurable, events):
    client = page_client(app, world, "pageadmin")
    page = client.get("/admin/plugins").get_data(as_text=True)
    assert 'id="plugin-recorder" data-enabled="true"' in page
    token = _TOKEN.search(page).group(1)
    assert client.post("/admin/plugins/recorder/toggle", data={"enabled": "0"}).status_code == 400
    assert db.session.get(PluginState, "recorder") is None
    response = client.post("/admin/plugins/recorder/toggle",
                           data={"csrf_token": token, "enabled": "0"})
    assert response.status_code == 302
    assert 'data-enabled="false"' in client.get("/admin/plugins").get_data(as_text=True)
    world.incident(desk.employee)
    assert _created(events) == []

    form = client.get("/admin/plugins/configurable/settings").get_data(as_text=True)
    token = _TOKEN.search(form).group(1)
    bad = client.post("/admin/plugins/configurable/settings",
                      data={"csrf_token": token, "url": "nope", "token": SECRET})
    assert bad.status_code == 422 and "url" in bad.get_data(as_text=True)
    good = client.post("/admin/plugins/configurable/settings",
                       data={"csrf_token": token, "url": "https://x.example.test/",
                             "timeout_seconds": "5", "token": SECRET})
    assert good.status_code == 302
    shown = client.get("/admin/plugins/configurable/settings").get_data(as_text=True)
    assert SECRET not in shown and "https://x.example.test/" in shown
    assert plugin_settings("configurable")["token"] == SECRET

    other = page_client(app, world, "pageagent")
    assert other.get("/admin/plugins").status_code == 404


def test_a_failed_install_records_nothing(app, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    result = app.test_cli_runner().invoke(
        cli, ["plugins", "install", "/nonexistent/servicedesk-plugin", "--by", "ops"])
    assert result.exit_code == 1
    assert "pip could not install" in result.output
    assert db.session.query(PluginState).count() == 0


def _probe_wheel(directory) -> str:
    """A real wheel of a tiny plugin (no build step, so pip needs no network)."""
    import base64
    import hashlib
    import zipfile

    files = {
        "sd_install_probe/__init__.py": (
            "from servicedesk.plugins import hookimpl\n\n\n@hookimpl\n"
            "def servicedesk_ticket_created(ticket, actor):\n    pass\n"),
        "sd_install_probe-0.1.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: sd-install-probe\nVersion: 0.1\n"),
        "sd_install_probe-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        "sd_install_probe-0.1.dist-info/entry_points.txt": (
            "[servicedesk]\ninstall_probe = sd_install_probe\n"),
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append("sd_install_probe-0.1.dist-info/RECORD,,")
    files["sd_install_probe-0.1.dist-info/RECORD"] = "\n".join(record) + "\n"
    path = str(directory / "sd_install_probe-0.1-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def test_install_records_the_new_plugin_disabled_with_who_and_when(app, tmp_path):
    """``plugins install`` runs pip for real; PIP_TARGET keeps it out of the shared venv
    (pip honours it like ``--target``) and PYTHONPATH lets servicedesk load it."""
    target = tmp_path / "site"
    target.mkdir()
    env = {**os.environ, "SERVICEDESK_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "PIP_TARGET": str(target), "PYTHONPATH": str(target),
           "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    servicedesk = os.path.join(os.path.dirname(sys.executable), "servicedesk")
    db.session.commit()

    def run(*args):
        return subprocess.run([servicedesk, "plugins", *args], env=env, capture_output=True,
                              text=True, timeout=180)

    installed = run("install", _probe_wheel(tmp_path), "--by", "ops-anna")
    assert installed.returncode == 0, installed.stderr
    assert "install_probe" in installed.stdout
    db.session.rollback()
    state = db.session.get(PluginState, "install_probe")
    assert state.enabled is False and state.installed_by == "ops-anna"
    assert state.installed_at is not None
    db.session.rollback()  # hold no SQLite lock while the other process reads
    listing = run("list")
    assert re.search(r"^install_probe\t0\.1\tdisabled\thealthy\tservicedesk_ticket_created$",
                     listing.stdout, re.M), listing.stdout + listing.stderr
    # this process has not loaded its code, but still lists it, as not loaded
    mine = {p.name: p for p in list_plugins(None)}
    assert mine["install_probe"].loaded is False and mine["install_probe"].enabled is False


def test_the_hand_written_migration_matches_the_model(app):
    import warnings

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.exc import SAWarning

    with db.engine.connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # other tables' expression indexes
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert [entry for entry in diff if "plugins" in repr(entry)] == []
