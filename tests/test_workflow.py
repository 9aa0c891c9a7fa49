"""The incident workflow through the API: every legal step, illegal ones, reopen, assignment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from servicedesk.extensions import db
from servicedesk.incidents.workflow import INCIDENT_WORKFLOW
from servicedesk.tickets.models import Ticket
from servicedesk.types import utcnow

STATES = ("new", "assigned", "in_progress", "pending", "resolved", "closed", "cancelled")

# The issue's workflow, written out here independently of the code's table.
STAFF_EDGES = {
    ("new", "assigned"), ("new", "in_progress"), ("new", "pending"), ("new", "resolved"),
    ("new", "cancelled"),
    ("assigned", "in_progress"), ("assigned", "pending"), ("assigned", "resolved"),
    ("assigned", "cancelled"),
    ("in_progress", "pending"), ("in_progress", "resolved"), ("in_progress", "cancelled"),
    ("pending", "in_progress"), ("pending", "resolved"), ("pending", "cancelled"),
    ("resolved", "closed"), ("resolved", "in_progress"),
}
REQUESTER_EDGES = {("new", "cancelled"), ("resolved", "closed"), ("resolved", "in_progress")}

# What each step needs in the request body.
STEP_BODY = {
    "assigned": {"assignee": "agent1"},
    "pending": {"pending_reason": "awaiting_vendor"},
    "resolved": {"resolution_code": "fixed", "resolution_notes": "Replaced the cable."},
}
# How to get an incident into each status, from new.
PATH = {
    "new": [],
    "assigned": ["assigned"],
    "in_progress": ["in_progress"],
    "pending": ["in_progress", "pending"],
    "resolved": ["in_progress", "resolved"],
    "closed": ["in_progress", "resolved", "closed"],
    "cancelled": ["cancelled"],
}


def move(api, number, to, **extra):
    return api.post(f"/incidents/{number}/transition", json={"to": to, **STEP_BODY.get(to, {}),
                                                             **extra})


def state(api, number) -> dict:
    """The incident as ``api`` sees it, minus the clock-driven ``open_seconds``."""
    response = api.get(f"/incidents/{number}")
    assert response.status_code == 200
    body = response.get_json()
    body.pop("open_seconds")
    return body


def incident_in(world, desk, status) -> str:
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    for step in PATH[status]:
        response = move(agent, number, step)
        assert response.status_code == 200, (step, response.get_json())
    assert agent.get(f"/incidents/{number}").get_json()["status"] == status
    return number


def test_the_workflow_table_is_the_one_the_issue_describes():
    staff = {(t.source, t.target) for t in INCIDENT_WORKFLOW.transitions
             if "agent" in t.roles}
    requester = {(t.source, t.target) for t in INCIDENT_WORKFLOW.transitions
                 if "requester" in t.roles}
    assert staff == STAFF_EDGES
    assert requester == REQUESTER_EDGES
    assert set(INCIDENT_WORKFLOW.states) == set(STATES)


@pytest.mark.parametrize("source", STATES[:5])
def test_staff_may_take_every_allowed_step_from(world, desk, source):
    targets = sorted(t for s, t in STAFF_EDGES if s == source)
    agent = world.api(desk.agent)
    for target in targets:
        number = incident_in(world, desk, source)
        before = state(agent, number)
        assert sorted(before["allowed_transitions"]) == targets
        response = move(agent, number, target)
        assert response.status_code == 200, (source, target, response.get_json())
        body = response.get_json()
        assert body["status"] == target
        assert body["version"] == before["version"] + 1
        assert body["is_open"] is (target not in ("resolved", "closed", "cancelled"))
        history = agent.get(f"/incidents/{number}/history").get_json()
        assert ("transition", "status", source, target, "agent1") in [
            (e["action"], e["field"], e["old_value"], e["new_value"], e["actor"])
            for e in history]


def test_each_step_sets_and_clears_its_own_fields(world, desk):
    agent = world.api(desk.agent)
    number = incident_in(world, desk, "new")
    body = move(agent, number, "assigned").get_json()
    assert (body["assignee"], body["group"]) == ("agent1", "Service Desk")
    body = move(agent, number, "in_progress").get_json()
    body = move(agent, number, "pending", pending_reason="awaiting_change").get_json()
    assert body["pending_reason"] == "awaiting_change"
    body = move(agent, number, "in_progress").get_json()
    assert body["pending_reason"] is None
    body = move(agent, number, "resolved").get_json()
    assert (body["resolution_code"], body["resolution_notes"]) == ("fixed",
                                                                   "Replaced the cable.")
    assert body["resolved_at"] is not None and body["closed_at"] is None
    body = move(agent, number, "closed").get_json()
    assert body["closed_at"] is not None
    assert body["allowed_transitions"] == []


def test_an_incident_pending_can_be_resolved_and_loses_its_pending_reason(world, desk):
    number = incident_in(world, desk, "pending")
    body = move(world.api(desk.agent), number, "resolved").get_json()
    assert (body["status"], body["pending_reason"]) == ("resolved", None)


@pytest.mark.parametrize("source", STATES)
def test_illegal_steps_are_refused_with_409_naming_the_allowed_ones(world, desk, source):
    number = incident_in(world, desk, source)
    agent = world.api(desk.agent)
    before = state(agent, number)
    allowed = sorted(t for s, t in STAFF_EDGES if s == source)
    illegal = [t for t in STATES if (source, t) not in STAFF_EDGES]
    assert illegal
    for target in illegal:
        response = move(agent, number, target)
        assert response.status_code == 409, (source, target, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == "invalid_transition"
        assert list(error["fields"]) == ["to"]
        for name in allowed:
            assert name in error["message"]
            assert name in error["fields"]["to"][0]
        if not allowed:
            assert "none" in error["message"]
    assert state(agent, number) == before


def test_a_requester_taking_a_staff_step_is_refused_and_told_their_options(world, desk):
    number = incident_in(world, desk, "new")
    api = world.api(desk.employee)
    response = move(api, number, "in_progress")
    assert response.status_code == 403
    assert "cancelled" in response.get_json()["error"]["fields"]["to"][0]
    response = move(api, number, "closed")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "invalid_transition"
    assert "cancelled" in response.get_json()["error"]["fields"]["to"][0]
    assert api.get(f"/incidents/{number}").get_json()["status"] == "new"


def test_an_unknown_target_status_is_a_422_naming_to(world, desk):
    number = incident_in(world, desk, "new")
    response = world.api(desk.agent).post(f"/incidents/{number}/transition",
                                          json={"to": "teleported"})
    assert response.status_code == 422
    assert "to" in response.get_json()["error"]["fields"]


def test_the_system_role_cannot_be_claimed_through_the_api(world, desk):
    number = incident_in(world, desk, "new")
    response = world.api(desk.employee).post(f"/incidents/{number}/transition",
                                             json={"to": "cancelled", "role": "system"})
    assert response.status_code == 422
    assert "role" in response.get_json()["error"]["fields"]


# --- required fields -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["new", "assigned", "in_progress"])
def test_pending_needs_a_reason_and_nothing_changes_without_one(world, desk, source):
    number = incident_in(world, desk, source)
    agent = world.api(desk.agent)
    before = state(agent, number)
    history = agent.get(f"/incidents/{number}/history").get_json()
    response = agent.post(f"/incidents/{number}/transition", json={"to": "pending"})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"pending_reason"}
    assert state(agent, number) == before
    assert agent.get(f"/incidents/{number}/history").get_json() == history


def test_an_unknown_pending_reason_is_refused(world, desk):
    number = incident_in(world, desk, "in_progress")
    response = move(world.api(desk.agent), number, "pending", pending_reason="lunch")
    assert response.status_code == 422
    assert "pending_reason" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize("body, missing", [
    ({}, {"resolution_code", "resolution_notes"}),
    ({"resolution_code": "fixed"}, {"resolution_notes"}),
    ({"resolution_notes": "Rebooted."}, {"resolution_code"}),
    ({"resolution_code": "fixed", "resolution_notes": None}, {"resolution_notes"}),
    ({"resolution_code": "fixed", "resolution_notes": "   "}, {"resolution_notes"}),
    ({"resolution_code": "magic", "resolution_notes": "x"}, {"resolution_code"}),
])
def test_resolving_needs_a_code_and_notes_and_nothing_changes_without_them(world, desk, body,
                                                                          missing):
    number = incident_in(world, desk, "in_progress")
    agent = world.api(desk.agent)
    before = state(agent, number)
    response = agent.post(f"/incidents/{number}/transition", json={"to": "resolved", **body})
    assert response.status_code == 422, response.get_json()
    assert set(response.get_json()["error"]["fields"]) == missing
    assert state(agent, number) == before


def test_a_stale_version_on_a_transition_is_refused(world, desk):
    number = incident_in(world, desk, "new")
    agent = world.api(desk.agent)
    response = move(agent, number, "in_progress", version=99)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "stale_version"
    assert agent.get(f"/incidents/{number}").get_json()["status"] == "new"
    assert move(agent, number, "in_progress", version=1).status_code == 200


# --- reopen and close --------------------------------------------------------------------


def _set_resolved_at(number, when):
    db.session.execute(update(Ticket).where(Ticket.number == number).values(resolved_at=when))
    db.session.commit()


def test_requester_reopens_within_the_window(world, desk, app):
    number = incident_in(world, desk, "resolved")
    days = app.config["SERVICEDESK_REOPEN_WINDOW_DAYS"]
    _set_resolved_at(number, utcnow() - timedelta(days=days) + timedelta(hours=1))
    response = move(world.api(desk.employee), number, "in_progress")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "in_progress"
    assert body["reopen_count"] == 1
    assert (body["resolution_code"], body["resolution_notes"], body["resolved_at"]) == (
        None, None, None)
    assert body["is_open"] is True
    history = world.api(desk.agent).get(f"/incidents/{number}/history").get_json()
    assert ("transition", "reopen_count", "0", "1") in [
        (e["action"], e["field"], e["old_value"], e["new_value"]) for e in history]


def test_reopen_count_keeps_counting(world, desk):
    number = incident_in(world, desk, "resolved")
    agent, employee = world.api(desk.agent), world.api(desk.employee)
    assert move(employee, number, "in_progress").get_json()["reopen_count"] == 1
    move(agent, number, "resolved")
    assert move(employee, number, "in_progress").get_json()["reopen_count"] == 2


def test_requester_cannot_reopen_after_the_window(world, desk, app):
    number = incident_in(world, desk, "resolved")
    days = app.config["SERVICEDESK_REOPEN_WINDOW_DAYS"]
    _set_resolved_at(number, utcnow() - timedelta(days=days, hours=1))
    employee = world.api(desk.employee)
    before = state(employee, number)
    response = move(employee, number, "in_progress")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "reopen_window_passed"
    assert "to" in error["fields"]
    assert state(employee, number) == before


def test_the_reopen_window_is_configurable(world, desk, app):
    app.config["SERVICEDESK_REOPEN_WINDOW_DAYS"] = 1
    number = incident_in(world, desk, "resolved")
    _set_resolved_at(number, utcnow() - timedelta(days=2))
    assert move(world.api(desk.employee), number, "in_progress").status_code == 409
    app.config["SERVICEDESK_REOPEN_WINDOW_DAYS"] = 3
    assert move(world.api(desk.employee), number, "in_progress").status_code == 200


def test_staff_may_reopen_after_the_requesters_window(world, desk, app):
    number = incident_in(world, desk, "resolved")
    _set_resolved_at(number, utcnow() - timedelta(days=365))
    response = move(world.api(desk.agent), number, "in_progress")
    assert response.status_code == 200
    assert response.get_json()["reopen_count"] == 1


def test_requester_confirms_the_fix_and_the_incident_closes(world, desk):
    number = incident_in(world, desk, "resolved")
    response = move(world.api(desk.employee), number, "closed")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["is_open"]) == ("closed", False)
    assert body["closed_at"] is not None
    assert body["resolution_code"] == "fixed"


def test_requester_may_withdraw_a_new_incident(world, desk):
    number = incident_in(world, desk, "new")
    response = move(world.api(desk.employee), number, "cancelled")
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"


@pytest.mark.parametrize("final", ["closed", "cancelled"])
def test_closed_and_cancelled_incidents_take_no_comments_edits_or_escalations(world, desk,
                                                                              final):
    number = incident_in(world, desk, final)
    for who in (desk.employee, desk.agent):
        api = world.api(who)
        response = api.post(f"/incidents/{number}/comments", json={"body": "hello?"})
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "ticket_closed"
    agent = world.api(desk.agent)
    version = agent.get(f"/incidents/{number}").get_json()["version"]
    response = agent.patch(f"/incidents/{number}", json={"title": "x", "version": version})
    assert response.status_code == 409
    assert agent.post(f"/incidents/{number}/escalate", json={}).status_code == 409
    assert agent.get(f"/incidents/{number}/comments").get_json() == []
    assert agent.get(f"/incidents/{number}").get_json()["version"] == version


# --- assignment --------------------------------------------------------------------------


def test_assigning_a_new_incident_makes_it_assigned(world, desk):
    number = incident_in(world, desk, "new")
    agent = world.api(desk.agent)
    response = agent.patch(f"/incidents/{number}", json={"assignee": "agent2", "version": 1})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["status"], body["assignee"], body["group"]) == ("assigned", "agent2",
                                                                 "Service Desk")
    history = agent.get(f"/incidents/{number}/history").get_json()
    rows = [(e["field"], e["old_value"], e["new_value"]) for e in history]
    assert ("assignee", None, "agent2") in rows
    assert ("status", "new", "assigned") in rows


def test_unassigning_an_assigned_incident_puts_it_back_to_new(world, desk):
    number = incident_in(world, desk, "assigned")
    agent = world.api(desk.agent)
    version = agent.get(f"/incidents/{number}").get_json()["version"]
    body = agent.patch(f"/incidents/{number}", json={"assignee": None,
                                                      "version": version}).get_json()
    assert (body["status"], body["assignee"]) == ("new", None)


def test_the_assignee_must_belong_to_the_group(world, desk):
    number = incident_in(world, desk, "new")
    agent = world.api(desk.agent)
    before = state(agent, number)
    for response in (
        agent.patch(f"/incidents/{number}", json={"assignee": "netagent", "version": 1}),
        agent.patch(f"/incidents/{number}", json={"group": "Network Team",
                                                  "assignee": "agent1", "version": 1}),
        move(agent, number, "assigned", assignee="netagent"),
    ):
        assert response.status_code == 422, response.get_json()
        assert set(response.get_json()["error"]["fields"]) == {"assignee"}
    assert state(agent, number) == before


@pytest.mark.parametrize("assignee", ["emma", "nobody", ""])
def test_the_assignee_must_be_an_existing_staff_member(world, desk, assignee):
    number = incident_in(world, desk, "new")
    agent = world.api(desk.agent)
    response = move(agent, number, "assigned", assignee=assignee)
    assert response.status_code == 422
    assert "assignee" in response.get_json()["error"]["fields"]
    assert agent.get(f"/incidents/{number}").get_json()["status"] == "new"


def test_a_deactivated_agent_cannot_be_assigned(world, desk):
    from servicedesk.identity.service import deactivate_user

    deactivate_user(None, desk.agent_b)
    number = incident_in(world, desk, "new")
    response = move(world.api(desk.agent), number, "assigned", assignee="agent2")
    assert response.status_code == 422
    assert "assignee" in response.get_json()["error"]["fields"]


def test_moving_to_another_group_with_a_member_of_it(world, desk):
    number = incident_in(world, desk, "new")
    response = world.api(desk.agent).patch(f"/incidents/{number}", json={
        "group": "Network Team", "assignee": "netagent", "version": 1})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["group"], body["support_line"], body["assignee"], body["status"]) == (
        "Network Team", 2, "netagent", "assigned")


def test_moving_to_another_group_drops_an_assignee_who_is_not_in_it(world, desk):
    number = incident_in(world, desk, "assigned")
    agent = world.api(desk.agent)
    version = agent.get(f"/incidents/{number}").get_json()["version"]
    body = agent.patch(f"/incidents/{number}", json={"group": "Network Team",
                                                      "version": version}).get_json()
    assert (body["group"], body["assignee"], body["status"]) == ("Network Team", None, "new")


def test_an_unknown_group_is_refused_naming_group(world, desk):
    number = incident_in(world, desk, "new")
    response = world.api(desk.agent).patch(f"/incidents/{number}",
                                           json={"group": "Nope", "version": 1})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"group"}


# --- functional escalation ------------------------------------------------------------------


def test_escalation_moves_the_incident_to_a_group_of_the_next_line(world, desk):
    number = incident_in(world, desk, "assigned")
    agent = world.api(desk.agent)
    response = agent.post(f"/incidents/{number}/escalate",
                          json={"group": "Network Team", "note": "Needs a switch config."})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["group"], body["support_line"], body["assignee"]) == ("Network Team", 2, None)
    assert body["escalation_count"] == 1
    assert body["status"] == "new"  # back in the new group's queue
    history = world.api(desk.admin).get(f"/incidents/{number}/history").get_json()
    rows = [(e["action"], e["field"], e["old_value"], e["new_value"], e["actor"])
            for e in history]
    assert ("escalated", "group", "Service Desk", "Network Team", "agent1") in rows
    assert ("escalated", "support_line", "1", "2", "agent1") in rows
    assert ("escalated", "assignee", "agent1", None, "agent1") in rows
    notes = world.api(desk.admin).get(f"/incidents/{number}/comments").get_json()
    assert [(c["body"], c["public"]) for c in notes] == [("Needs a switch config.", False)]


def test_escalation_keeps_work_in_progress_in_progress(world, desk):
    number = incident_in(world, desk, "in_progress")
    body = world.api(desk.agent).post(f"/incidents/{number}/escalate",
                                      json={"group": "Network Team"}).get_json()
    assert (body["status"], body["support_line"]) == ("in_progress", 2)


def test_escalation_without_a_group_picks_one_of_the_next_line(world, desk):
    number = incident_in(world, desk, "new")
    body = world.api(desk.agent).post(f"/incidents/{number}/escalate", json={}).get_json()
    assert (body["group"], body["support_line"]) == ("Network Team", 2)


def test_escalation_goes_line_by_line_up_to_l3(world, desk):
    number = incident_in(world, desk, "new")
    first = world.api(desk.agent).post(f"/incidents/{number}/escalate", json={})
    second = world.api(desk.l2_agent).post(f"/incidents/{number}/escalate",
                                           json={"group": "Engineering"})
    assert second.status_code == 200
    assert (second.get_json()["support_line"], second.get_json()["escalation_count"]) == (3, 2)
    assert first.get_json()["escalation_count"] == 1


@pytest.mark.parametrize("group", ["Engineering", "Service Desk"])
def test_escalating_to_a_group_of_the_wrong_line_is_a_422(world, desk, group):
    number = incident_in(world, desk, "new")
    agent = world.api(desk.agent)
    before = state(agent, number)
    response = agent.post(f"/incidents/{number}/escalate", json={"group": group})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"group"}
    assert state(agent, number) == before


def test_escalating_from_l3_is_a_409(world, desk):
    number = incident_in(world, desk, "new")
    admin = world.api(desk.admin)
    version = admin.get(f"/incidents/{number}").get_json()["version"]
    admin.patch(f"/incidents/{number}", json={"group": "Engineering", "version": version})
    before = state(admin, number)
    assert before["support_line"] == 3
    response = admin.post(f"/incidents/{number}/escalate", json={})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "no_next_line"
    assert state(admin, number) == before


def test_requesters_cannot_escalate(world, desk):
    number = incident_in(world, desk, "new")
    response = world.api(desk.employee).post(f"/incidents/{number}/escalate", json={})
    assert response.status_code == 403
    assert world.api(desk.agent).get(f"/incidents/{number}").get_json()["support_line"] == 1


def test_escalating_a_resolved_incident_is_a_409(world, desk):
    number = incident_in(world, desk, "resolved")
    response = world.api(desk.agent).post(f"/incidents/{number}/escalate", json={})
    assert response.status_code == 409
