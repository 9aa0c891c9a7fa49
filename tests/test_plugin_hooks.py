"""Plugins extend the web, the CLI and the admin pages through hooks (the recorder test
plugin, through its entry point), and a plugin that hangs is time-boxed: the ticket is
created anyway and the hang is counted against that plugin only."""

from __future__ import annotations

import re
import threading

import pytest
from sd_test_recorder import exploder, recorder

from servicedesk.cli import main as cli
from servicedesk.plugins import call_hook, hookimpl, plugin_manager

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def events(app):
    recorder.EVENTS.clear()
    yield recorder.EVENTS
    recorder.EVENTS.clear()


def _admin_client(app, world):
    world.user("admin", "pageadmin", password="page password")
    client = app.test_client()
    token = _TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"csrf_token": token, "username": "pageadmin",
                                           "password": "page password"})
    assert response.status_code == 302
    return client


# --- blueprints, CLI commands, admin pages ---------------------------------------------


def test_a_plugins_blueprint_serves_while_enabled_and_is_gone_while_disabled(
        app, world, desk, events):
    client = _admin_client(app, world)
    world.incident(desk.employee)
    body = client.get("/recorder/events").get_json()
    assert body["count"] == 1 and body["events"][0][0] == "created"
    assert world.api(desk.admin).post("/admin/plugins/recorder/disable").status_code == 200
    assert client.get("/recorder/events").status_code == 404
    world.api(desk.admin).post("/admin/plugins/recorder/enable")
    assert client.get("/recorder/events").status_code == 200


def test_a_plugins_admin_page_is_linked_from_the_plugin_page(app, world, desk):
    client = _admin_client(app, world)
    page = client.get("/admin/plugins").get_data(as_text=True)
    assert '<a href="/recorder/events">Recorded events</a>' in page
    for name in ("webhook", "chat"):  # the built-ins' settings forms render
        assert client.get(f"/admin/plugins/{name}/settings").status_code == 200
    world.api(desk.admin).post("/admin/plugins/recorder/disable")
    assert "/recorder/events" not in client.get("/admin/plugins").get_data(as_text=True)


def test_a_plugins_cli_command_runs_with_the_app_context(app, world, desk, events):
    world.incident(desk.employee)
    world.incident(desk.employee)
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["recorder-count"])
    assert result.exit_code == 0, result.output
    assert "2 incident ticket(s), 2 event(s) recorded" in result.output
    assert "recorder-count" in runner.invoke(cli, ["--help"]).output
    runner.invoke(cli, ["plugins", "disable", "recorder"])
    refused = runner.invoke(cli, ["recorder-count"])
    assert refused.exit_code == 1 and "disabled" in refused.output


# --- time-boxing --------------------------------------------------------------------------


@pytest.fixture
def hanging_exploder(app):
    """The exploder plugin hangs in servicedesk_ticket_created until released."""
    app.config["SERVICEDESK_PLUGIN_TIMEOUT"] = 1.0  # generous: the others must finish in it
    exploder.HANG, exploder.RETURNED = threading.Event(), threading.Event()
    try:
        yield
    finally:
        exploder.HANG.set()
        exploder.RETURNED.wait(10)
        exploder.HANG = exploder.RETURNED = None
        app.extensions["servicedesk"].get("hung", {}).clear()


def test_a_hanging_plugin_is_time_boxed_counted_and_breaks_nothing(
        world, desk, events, hanging_exploder, app):
    first = world.api(desk.employee).post("/incidents", json={"title": "Hang 1"})
    second = world.api(desk.employee).post("/incidents", json={"title": "Hang 2"})
    assert first.status_code == 201 and second.status_code == 201
    numbers = [first.get_json()["number"], second.get_json()["number"]]
    # The other plugins still heard of both, and the incidents are saved.
    assert [e[1] for e in events if e[0] == "created"] == numbers
    assert world.api(desk.employee).get(f"/incidents/{numbers[0]}").status_code == 200
    # The hang counts once; while it lasts, the plugin's next call is skipped (counted).
    assert app.extensions["servicedesk"]["failures"] == {"exploder": 2}
    body = world.api(desk.admin).get("/admin/plugins/exploder").get_json()
    assert body["healthy"] is False and "skipped" in body["last_error"]
    recorder_body = world.api(desk.admin).get("/admin/plugins/recorder").get_json()
    assert recorder_body["healthy"] is True


def test_the_time_box_reports_the_overrun_in_the_plugins_health(
        world, desk, hanging_exploder, app):
    world.incident(desk.employee)
    body = world.api(desk.admin).get("/admin/plugins/exploder").get_json()
    assert body["failures"] == 1
    assert "timed out after 1 s" in body["last_error"]


def test_hooks_run_in_plugin_threads_with_their_own_session(world, desk, app):
    from servicedesk.extensions import db

    seen = []

    class Probe:
        @hookimpl
        def servicedesk_ticket_created(self, ticket, actor):
            seen.append((threading.current_thread().name, db.session() is not caller_session,
                         ticket.number, actor.username))

    caller_session = db.session()
    plugin_manager().register(Probe(), name="probe")
    try:
        number = world.incident(desk.employee)["number"]
    finally:
        plugin_manager().unregister(name="probe")
    ((thread, own_session, seen_number, username),) = seen
    assert thread.startswith("servicedesk-plugin") and own_session
    assert (seen_number, username) == (number, "emma")


def test_a_hook_called_inside_a_transaction_runs_inline(app, desk):
    from servicedesk.extensions import db
    from servicedesk.identity.models import User

    threads = []

    class Probe:
        @hookimpl
        def servicedesk_notifiers(self):
            threads.append(threading.current_thread().name)
            return []

    plugin_manager().register(Probe(), name="probe")
    try:
        db.session.get(User, desk.admin.id, populate_existing=True)  # a transaction is open
        call_hook("servicedesk_notifiers")
        db.session.commit()
        call_hook("servicedesk_notifiers")
    finally:
        plugin_manager().unregister(name="probe")
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("servicedesk-plugin")


def test_a_plugin_that_promises_not_to_wait_runs_in_the_callers_thread(app, world, desk):
    """SERVICEDESK_INLINE_HOOKS: no thread hop, still isolated (errors counted)."""
    import threading
    import types

    from servicedesk.plugins import hookimpl, plugin_health, plugin_manager

    seen = []

    def created(ticket, actor):
        seen.append(threading.current_thread().name)
        raise RuntimeError("inline plugin broke")

    trusted = types.ModuleType("inline_trusted")
    trusted.SERVICEDESK_INLINE_HOOKS = True
    trusted.servicedesk_ticket_created = hookimpl(created)
    pm = plugin_manager()
    pm.register(trusted, name="inline_trusted")
    try:
        incident = world.incident(desk.employee)
    finally:
        pm.unregister(trusted)
    assert incident["number"].startswith("INC")
    assert seen == [threading.current_thread().name]
    assert plugin_health("inline_trusted")[0] == 1
