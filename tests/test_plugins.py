"""Plugins: found through the ``servicedesk`` entry points, told of every lifecycle event,
and isolated: one that raises is logged and counted, and breaks nothing."""

from __future__ import annotations

import logging

import pluggy
import pytest
from sd_test_recorder import exploder, recorder

from servicedesk.extensions import db
from servicedesk.plugins import create_plugin_manager, hookimpl, plugin_manager


@pytest.fixture
def events(app):
    recorder.EVENTS.clear()
    yield recorder.EVENTS
    recorder.EVENTS.clear()


def test_the_test_plugins_are_found_through_their_entry_points(app):
    pm = plugin_manager()
    names = {name for name, _plugin in pm.list_name_plugin()}
    assert {"recorder", "exploder"} <= names
    assert pm.get_plugin("recorder") is recorder
    dists = {plugin.__name__: dist.project_name for plugin, dist in pm.list_plugin_distinfo()}
    assert dists["sd_test_recorder.recorder"] == "servicedesk-test-recorder"


def test_no_plugins_are_loaded_when_entry_points_are_off():
    pm = create_plugin_manager(load_entry_points=False)
    assert pm.get_plugin("recorder") is None


def test_the_recorder_sees_an_incident_created(world, desk, events):
    number = world.incident(desk.employee)["number"]
    assert events == [("created", number, "emma")]


def test_the_recorder_sees_an_update_with_the_changed_fields(world, desk, events):
    number = world.incident(desk.employee, impact="low")["number"]
    events.clear()
    world.api(desk.agent).patch(f"/incidents/{number}", json={"impact": "high", "title": "T",
                                                              "version": 1})
    assert events == [("updated", number, ["impact", "priority", "title"])]


def test_an_assignment_by_patch_is_an_update_and_a_transition(world, desk, events):
    number = world.incident(desk.employee)["number"]
    events.clear()
    world.api(desk.agent).patch(f"/incidents/{number}", json={"assignee": "agent1",
                                                              "version": 1})
    assert events == [("updated", number, ["assignee", "status"]),
                      ("transitioned", number, "new", "assigned")]


def test_the_recorder_sees_transitions_with_from_and_to(world, desk, events):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    agent.post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    agent.post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "ok"})
    world.api(desk.employee).post(f"/incidents/{number}/transition", json={"to": "closed"})
    assert events[1:] == [
        ("transitioned", number, "new", "in_progress"),
        ("transitioned", number, "in_progress", "resolved"),
        ("transitioned", number, "resolved", "closed"),
    ]


def test_the_recorder_sees_public_replies_and_internal_notes(world, desk, events):
    number = world.incident(desk.employee)["number"]
    world.api(desk.agent).post(f"/incidents/{number}/comments", json={"body": "hi"})
    world.api(desk.agent).post(f"/incidents/{number}/comments",
                               json={"body": "note", "public": False})
    assert events[1:] == [("commented", number, True), ("commented", number, False)]


def test_nothing_is_told_of_a_refused_change(world, desk, events):
    number = world.incident(desk.employee)["number"]
    events.clear()
    agent = world.api(desk.agent)
    agent.patch(f"/incidents/{number}", json={"title": "x", "version": 9})
    agent.post(f"/incidents/{number}/transition", json={"to": "closed"})
    world.api(desk.employee).post(f"/incidents/{number}/comments",
                                  json={"body": "x", "public": False})
    assert events == []


class Spy:
    """A plugin registered for one test: records the objects each hook receives."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def servicedesk_ticket_created(self, ticket, actor):
        self.calls.append(("created", ticket, actor, _committed(ticket.number)))

    @hookimpl
    def servicedesk_ticket_updated(self, ticket, actor, changes):
        self.calls.append(("updated", ticket, actor,
                           [(c.field, c.old_value, c.new_value, c.id) for c in changes]))

    @hookimpl
    def servicedesk_ticket_transitioned(self, ticket, actor, from_status, to_status):
        self.calls.append(("transitioned", ticket, actor, (from_status, to_status)))

    @hookimpl
    def servicedesk_ticket_commented(self, ticket, comment, actor):
        self.calls.append(("commented", ticket, actor, (comment.body, comment.public,
                                                        comment.author_id)))


def _committed(number) -> bool:
    """Whether another connection already sees ``number``: the change is committed.

    A raw DBAPI connection, so no transaction (nor SQLite write lock) is asked for.
    """
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT count(*) FROM tickets WHERE number = " + (
            "%s" if db.engine.dialect.name == "postgresql" else "?"), (number,))
        return cursor.fetchone()[0] == 1
    finally:
        connection.rollback()
        connection.close()


@pytest.fixture
def spy(app):
    spy = Spy()
    plugin_manager().register(spy, name="spy")
    yield spy
    plugin_manager().unregister(name="spy")


def test_hooks_get_the_ticket_the_actor_and_the_details(world, desk, spy):
    number = world.incident(desk.employee, impact="low")["number"]
    agent = world.api(desk.agent)
    agent.patch(f"/incidents/{number}", json={"impact": "high", "version": 1})
    agent.post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    agent.post(f"/incidents/{number}/comments", json={"body": "Looking", "public": True})
    kinds = [call[0] for call in spy.calls]
    assert kinds == ["created", "updated", "transitioned", "commented"]
    for kind, ticket, actor, _details in spy.calls:
        assert ticket.number == number and ticket.kind == "incident"
        assert actor.username == ("emma" if kind == "created" else "agent1")
    created, updated, transitioned, commented = (call[3] for call in spy.calls)
    assert created is True  # hooks run after the commit: plugins see saved data
    assert sorted(c[:3] for c in updated) == [("impact", "low", "high"),
                                             ("priority", "4", "2")]
    assert all(c[3] is not None for c in updated)  # the saved audit entries themselves
    assert transitioned == ("new", "in_progress")
    assert commented == ("Looking", True, desk.agent.id)


def test_the_auto_close_job_tells_plugins_the_actor_is_the_system(world, desk, spy, app):
    from datetime import timedelta

    from sqlalchemy import update

    from servicedesk.incidents.jobs import auto_close_resolved
    from servicedesk.tickets.models import Ticket
    from servicedesk.types import utcnow

    number = world.incident(desk.employee)["number"]
    world.api(desk.agent).post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "ok"})
    db.session.execute(update(Ticket).where(Ticket.number == number).values(
        resolved_at=utcnow() - timedelta(days=30)))
    db.session.commit()
    spy.calls.clear()
    assert auto_close_resolved() == 1
    assert [(c[0], c[2], c[3]) for c in spy.calls] == [
        ("transitioned", None, ("resolved", "closed"))]


# --- a plugin that raises -------------------------------------------------------------------


def test_a_failing_plugin_is_logged_counted_and_breaks_nothing(world, desk, events, caplog, app):
    failures = app.extensions["servicedesk"]["failures"]
    assert failures.get("exploder", 0) == 0
    exploder.ARMED = True
    try:
        with caplog.at_level(logging.ERROR, logger="servicedesk.plugins"):
            response = world.api(desk.employee).post("/incidents", json={"title": "Boom"})
            second = world.api(desk.employee).post("/incidents", json={"title": "Boom 2"})
    finally:
        exploder.ARMED = False
    assert response.status_code == 201, response.get_json()
    assert second.status_code == 201
    number = response.get_json()["number"]
    # The other plugin still heard of both...
    assert events == [("created", number, "emma"),
                      ("created", second.get_json()["number"], "emma")]
    # ...the incident is saved...
    assert world.api(desk.employee).get(f"/incidents/{number}").status_code == 200
    # ...and the failure is visible: logged with its traceback, and counted.
    failed = [r for r in caplog.records if r.name == "servicedesk.plugins"]
    assert len(failed) == 2
    assert "exploder" in failed[0].getMessage()
    assert "servicedesk_ticket_created" in failed[0].getMessage()
    assert failed[0].exc_info and "failed on purpose" in str(failed[0].exc_info[1])
    assert failures["exploder"] == 2
    assert "recorder" not in failures


def test_a_disarmed_plugin_adds_no_failures(world, desk, events, app):
    world.incident(desk.employee)
    assert app.extensions["servicedesk"]["failures"] == {}


# --- hook implementations are checked ---------------------------------------------------------


class Misspelt:
    @hookimpl
    def servicedesk_ticket_creatd(self, ticket, actor):  # sic
        pass


class WrongArguments:
    @hookimpl
    def servicedesk_ticket_created(self, ticket, actor, extra):
        pass


def test_a_misspelt_hook_implementation_is_an_error_at_start_up():
    pm = create_plugin_manager(load_entry_points=False)
    pm.register(Misspelt())
    with pytest.raises(pluggy.PluginValidationError, match="servicedesk_ticket_creatd"):
        pm.check_pending()


def test_a_hook_implementation_asking_for_unknown_arguments_is_refused():
    pm = create_plugin_manager(load_entry_points=False)
    with pytest.raises(pluggy.PluginValidationError, match="extra"):
        pm.register(WrongArguments())


def test_a_hook_implementation_may_take_fewer_arguments_than_the_spec(world, desk, app):
    seen = []

    class Minimal:
        @hookimpl
        def servicedesk_ticket_created(self, ticket):
            seen.append(ticket.number)

    plugin_manager().register(Minimal(), name="minimal")
    try:
        number = world.incident(desk.employee)["number"]
    finally:
        plugin_manager().unregister(name="minimal")
    assert seen == [number]
