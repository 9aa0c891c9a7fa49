"""Notification rules as data, users' mutes and channels, watchers, and the admin pages
for rules and failed deliveries."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import SAWarning
from werkzeug.security import generate_password_hash

from servicedesk.extensions import db
from servicedesk.notify import rules
from servicedesk.notify.models import Notification
from servicedesk.notify.preferences import NotificationPreference
from servicedesk.notify.rules import NotificationRule, notify_event
from servicedesk.tickets.models import Ticket

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def default_rules(app):
    """The rules migration 0016 seeds (the test database is emptied between tests)."""
    rules.invalidate()
    rules.seed_defaults()
    yield
    rules.invalidate()


def outbox() -> list[tuple[str, str]]:
    """(event, recipient username) of every queued message, oldest first."""
    db.session.rollback()
    rows = db.session.scalars(select(Notification).order_by(Notification.id))
    return [(n.event, n.recipient.username) for n in rows]


def rule(event: str, kind: str) -> NotificationRule:
    return db.session.scalars(select(NotificationRule).where(
        NotificationRule.event == event, NotificationRule.recipient_kind == kind)).one()


def test_the_migration_builds_exactly_the_model_and_seeds_the_defaults(app):
    with db.engine.connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    mine = ("notification_rules", "notification_preferences", "ticket_watchers")
    assert [entry for entry in diff if any(name in repr(entry) for name in mine)] == []
    migration = (Path(__file__).parents[1] / "migrations" / "versions"
                 / "0016_notification_rules.py").read_text()
    for event_name, kind, *_rest in rules.DEFAULT_RULES:
        assert f'("{event_name}", "{kind}",' in migration


# --- the lifecycle, rule-driven -----------------------------------------------------------


def test_raising_an_incident_confirms_to_the_requester_only(world, desk):
    created = world.incident(desk.employee)
    assert outbox() == [("ticket.created", "emma")]
    [row] = db.session.scalars(select(Notification)).all()
    ticket_id = db.session.scalars(select(Ticket.id).where(Ticket.number == created["number"])).one()
    assert row.dedupe_key == f"ticket.created:{ticket_id}:new:{desk.employee.id}:email"
    assert row.subject.startswith(f"[{created['number']}] New: Printer jam")


def test_an_assignment_tells_the_assignee_but_not_who_assigned_themselves(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    version = agent.get(f"/incidents/{number}").get_json()["version"]
    response = agent.patch(f"/incidents/{number}",
                           json={"assignee": desk.agent_b.username, "version": version})
    assert response.status_code == 200, response.get_json()
    assert outbox()[1:] == [("ticket.assigned", "agent2")]
    mine = world.incident(desk.employee)["number"]
    version = agent.get(f"/incidents/{mine}").get_json()["version"]
    agent.patch(f"/incidents/{mine}", json={"assignee": desk.agent.username, "version": version})
    assert [e for e in outbox() if e[0] == "ticket.assigned"] == [("ticket.assigned", "agent2")]


def test_a_public_reply_tells_requester_assignee_and_watchers_never_the_author(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    version = agent.get(f"/incidents/{number}").get_json()["version"]
    agent.patch(f"/incidents/{number}", json={"assignee": desk.agent.username, "version": version})
    assert world.api(desk.manager).post(f"/incidents/{number}/watchers").status_code == 200
    before = len(outbox())
    agent.post(f"/incidents/{number}/comments", json={"body": "Internal only", "public": False})
    assert len(outbox()) == before  # internal notes tell nobody
    world.api(desk.employee).post(f"/incidents/{number}/comments", json={"body": "Still broken"})
    assert sorted(outbox()[before:]) == [("ticket.commented", "agent1"),
                                         ("ticket.commented", "boss")]
    before = len(outbox())
    agent.post(f"/incidents/{number}/comments", json={"body": "On my way"})
    assert sorted(outbox()[before:]) == [("ticket.commented", "boss"),
                                         ("ticket.commented", "emma")]


def test_resolving_tells_the_requester_once_and_reopening_tells_the_assignee(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    version = agent.get(f"/incidents/{number}").get_json()["version"]
    agent.patch(f"/incidents/{number}", json={"assignee": desk.agent.username, "version": version})
    for step in ({"to": "in_progress"},
                 {"to": "resolved", "resolution_code": "fixed", "resolution_notes": "Reseated"}):
        response = agent.post(f"/incidents/{number}/transition", json=step)
        assert response.status_code == 200, response.get_json()
    # One mail for the requester: the satisfaction survey says it was resolved, and how.
    told = [e for e in outbox() if e[0] in ("ticket.resolved", "ticket.survey")]
    assert told == [("ticket.survey", "emma")]
    survey = db.session.scalars(select(Notification).where(
        Notification.event == "ticket.survey")).one()
    assert "Resolution: Reseated" in survey.body_text and "Reseated" in survey.body_html
    response = world.api(desk.employee).post(f"/incidents/{number}/transition",
                                             json={"to": "in_progress"})
    assert response.status_code == 200, response.get_json()
    assert [e for e in outbox() if e[0] == "ticket.reopened"] == [("ticket.reopened", "agent1")]


def test_queueing_the_same_change_twice_sends_once(world, desk):
    world.incident(desk.employee)
    ticket = db.session.scalars(select(Ticket)).one()
    first = notify_event("ticket.created", ticket, actor=desk.employee, dedupe_suffix="x")
    again = notify_event("ticket.created", ticket, actor=desk.employee, dedupe_suffix="x")
    db.session.commit()
    assert len(first) == 1 and again == []
    assert notify_event("ticket.created", ticket, actor=desk.employee, dedupe_suffix="x") == []
    assert outbox() == [("ticket.created", "emma")] * 2  # the hook's, and "x" once


def test_approvers_named_by_the_caller_get_a_non_mutable_rule(world, desk):
    world.incident(desk.employee)
    ticket = db.session.scalars(select(Ticket)).one()
    db.session.add(NotificationPreference(user_id=desk.manager.id, event="approval_requested",
                                          backend="email", muted=True))
    queued = notify_event("approval_requested", ticket, actor=desk.agent,
                          recipients={"approver": [desk.manager, desk.agent]},
                          context={"approval": None}, dedupe_suffix="ap1")
    assert [n.recipient_id for n in queued] == [desk.manager.id]  # the actor is dropped


# --- preferences ---------------------------------------------------------------------------


def test_a_user_mutes_replies_and_cannot_mute_the_confirmation(world, desk):
    employee = world.api(desk.employee)
    body = employee.get("/me/notification-preferences").get_json()
    lines = {(e["event"], e["backend"]): e for e in body["events"]}
    assert lines[("ticket.created", "email")]["mutable"] is False
    assert lines[("ticket.commented", "email")] == {
        "event": "ticket.commented", "backend": "email", "muted": False, "mutable": True,
        "label": "A public reply was added"}
    assert body["channels"][0] == {"backend": "email", "enabled": True, "available": True,
                                   "locked": True}

    response = employee.put("/me/notification-preferences", json={"events": [
        {"event": "ticket.commented", "muted": True},
        {"event": "ticket.created", "muted": True}]})
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["mute.ticket.created.email"]
    assert db.session.scalars(select(NotificationPreference)).all() == []  # nothing changed

    for bad, field in (({"event": "ticket.eaten", "muted": True}, "mute.ticket.eaten.email"),):
        response = employee.put("/me/notification-preferences", json={"events": [bad]})
        assert response.status_code == 422 and field in response.get_json()["error"]["fields"]
    response = employee.put("/me/notification-preferences",
                            json={"channels": [{"backend": "email", "enabled": False}]})
    assert list(response.get_json()["error"]["fields"]) == ["channel.email"]
    assert employee.put("/me/notification-preferences",
                        json={"events": [{"muted": True}]}).status_code == 422

    body["events"] = [dict(e, muted=e["event"] == "ticket.commented") for e in body["events"]]
    response = employee.put("/me/notification-preferences", json=body)  # GET's answer, back
    assert response.status_code == 200, response.get_json()
    assert [e["event"] for e in response.get_json()["events"] if e["muted"]] == [
        "ticket.commented"]
    number = world.incident(desk.employee)["number"]
    world.api(desk.agent).post(f"/incidents/{number}/comments", json={"body": "Hello"})
    assert ("ticket.commented", "emma") not in outbox()
    assert ("ticket.created", "emma") in outbox()  # locked: sent anyway
    assert world.api(None).get("/me/notification-preferences").status_code == 401


# --- admin API -----------------------------------------------------------------------------


def test_admins_switch_a_rule_off_and_it_applies_at_once(world, desk):
    admin = world.api(desk.admin)
    items = admin.get("/admin/notification-rules").get_json()["items"]
    confirmation = next(r for r in items
                        if (r["event"], r["recipient_kind"]) == ("ticket.created", "requester"))
    path = f"/admin/notification-rules/{confirmation['id']}"
    assert admin.patch(path, json={"enabled": False}).status_code == 422  # no version
    response = admin.patch(path, json={"enabled": False, "version": confirmation["version"]})
    assert response.status_code == 200 and response.get_json()["enabled"] is False
    stale = admin.patch(path, json={"enabled": True, "version": confirmation["version"]})
    assert stale.status_code == 409 and "version" in stale.get_json()["error"]["fields"]
    world.incident(desk.employee)
    assert outbox() == []


def test_rule_creation_is_validated_and_admin_only(world, desk):
    admin = world.api(desk.admin)
    response = admin.post("/admin/notification-rules",
                          json={"event": "ticket.eaten", "recipient_kind": "requester"})
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["event"]
    response = admin.post("/admin/notification-rules",
                          json={"event": "ticket.created", "recipient_kind": "requester"})
    assert response.status_code == 409  # exists already
    count = len(admin.get("/admin/notification-rules").get_json()["items"])
    response = admin.post("/admin/notification-rules",
                          json={"event": "ticket.closed", "recipient_kind": "watchers"})
    assert response.status_code == 201, response.get_json()
    new_id = response.get_json()["id"]
    for role in ("requester", "agent", "manager"):
        api = world.api(world.user(role, groups=[] if role == "requester" else [desk.l1]))
        assert api.get("/admin/notification-rules").status_code == 403
        assert api.request("DELETE", f"/admin/notification-rules/{new_id}").status_code == 403
    assert admin.request("DELETE", f"/admin/notification-rules/{new_id}").status_code == 204
    assert len(admin.get("/admin/notification-rules").get_json()["items"]) == count
    assert admin.get("/admin/notification-rules/99999999999").status_code == 404


def test_watchers_add_and_remove_themselves_on_incidents_they_see(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    assert agent.post(f"/incidents/{number}/watchers").get_json() == {
        "watchers": ["agent1"], "watching": True}
    assert agent.post(f"/incidents/{number}/watchers").status_code == 200  # idempotent
    assert world.api(desk.employee).get(f"/incidents/{number}/watchers").get_json() == {
        "watchers": ["agent1"], "watching": False}
    assert world.api(desk.other_employee).post(
        f"/incidents/{number}/watchers").status_code == 404
    assert agent.request("DELETE", f"/incidents/{number}/watchers").get_json() == {
        "watchers": [], "watching": False}


# --- pages ---------------------------------------------------------------------------------


class PageClient(FlaskClient):
    def open(self, *args, **kwargs):
        for name in list(g):
            g.pop(name)
        return super().open(*args, **kwargs)

    def token(self, page: str) -> str:
        response = self.get(page)
        assert response.status_code == 200, (page, response.status_code)
        return _TOKEN.search(response.get_data(as_text=True)).group(1)


def signed_in(app, user) -> PageClient:
    user.password_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
    db.session.commit()
    client = PageClient(app, app.response_class, use_cookies=True)
    response = client.post("/login", data={"csrf_token": client.token("/login"),
                                           "username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_the_rules_page_toggles_a_rule_with_csrf(app, world, desk):
    page = signed_in(app, desk.admin)
    html = page.get("/admin/notification-rules").get_data(as_text=True)
    target = rule("ticket.closed", "requester")
    assert f'id="rule-{target.id}" data-enabled="false"' in html
    form = {"field": "enabled", "value": "1", "version": str(target.version)}
    assert page.post(f"/admin/notification-rules/{target.id}", data=form).status_code == 400
    token = page.token("/admin/notification-rules")
    response = page.post(f"/admin/notification-rules/{target.id}",
                         data={**form, "csrf_token": token})
    assert response.status_code == 302
    stale = page.post(f"/admin/notification-rules/{target.id}",
                      data={**form, "csrf_token": page.token("/admin/notification-rules")})
    assert stale.status_code == 409 and "version" in stale.get_data(as_text=True)
    db.session.rollback()
    assert rule("ticket.closed", "requester").enabled is True
    assert signed_in(app, desk.agent).get("/admin/notification-rules").status_code == 404


def test_my_notifications_page_mutes_and_shows_locked_lines(app, world, desk):
    page = signed_in(app, desk.employee)
    html = page.get("/me/notifications").get_data(as_text=True)
    assert 'name="mute.ticket.commented.email"' in html
    assert 'name="mute.ticket.created.email"' not in html  # locked: no checkbox
    response = page.post("/me/notifications", data={
        "csrf_token": page.token("/me/notifications"), "mute.ticket.resolved.email": "1"})
    assert response.status_code == 302
    db.session.rollback()
    assert [(p.event, p.muted) for p in db.session.scalars(select(NotificationPreference))] == [
        ("ticket.resolved", True)]


def test_admins_list_failed_deliveries_and_retry_one(app, world, desk):
    world.incident(desk.employee)
    row = db.session.scalars(select(Notification)).one()
    row.status, row.attempts, row.last_error = "failed", 5, "550 No such user"
    db.session.commit()
    page = signed_in(app, desk.admin)
    html = page.get("/admin/notifications?status=failed").get_data(as_text=True)
    assert f'id="notification-{row.id}" data-status="failed"' in html and "550 No such user" in html
    assert page.get("/admin/notifications?status=lost").status_code == 422
    token = page.token("/admin/notifications?status=failed")
    assert page.post(f"/admin/notifications/{row.id}/retry").status_code == 400  # no CSRF
    response = page.post(f"/admin/notifications/{row.id}/retry",
                         data={"csrf_token": token, "status": "failed"})
    assert response.status_code == 302
    db.session.rollback()
    assert db.session.get(Notification, row.id).status == "pending"
    again = page.post(f"/admin/notifications/{row.id}/retry", data={"csrf_token": token})
    assert again.status_code == 409  # pending now: only failed ones are retried
    assert signed_in(app, desk.manager).get("/admin/notifications").status_code == 404


def test_watchers_are_told_of_a_resolution_and_the_requester_gets_only_the_survey(world, desk):
    watcher = world.user("agent", "watcher", groups=[desk.l1])
    number = world.incident(desk.employee)["number"]
    assert world.api(watcher).post(f"/incidents/{number}/watchers").status_code in (200, 201)
    response = world.api(desk.agent).post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Reseated"})
    assert response.status_code == 200, response.get_json()
    # The requester's survey covers the resolution; the watcher is told it was resolved.
    told = sorted(e for e in outbox() if e[0] in ("ticket.resolved", "ticket.survey"))
    assert told == [("ticket.resolved", "watcher"), ("ticket.survey", "emma")]
