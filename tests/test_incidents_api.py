"""Incident management through the REST API: numbers, priority, edits, comments, history."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete, func, select

from servicedesk.extensions import db
from servicedesk.incidents.models import Incident
from servicedesk.tickets.admin import create_category
from servicedesk.tickets.models import Ticket, TicketCounter

DEFAULT_MATRIX = {
    ("high", "high"): 1,
    ("high", "medium"): 2,
    ("medium", "high"): 2,
    ("high", "low"): 3,
    ("medium", "medium"): 3,
    ("low", "high"): 3,
    ("medium", "low"): 4,
    ("low", "medium"): 4,
    ("low", "low"): 5,
}


def _count_incidents() -> int:
    return db.session.scalar(select(func.count()).select_from(Incident))


# --- creating --------------------------------------------------------------------------


def test_creating_an_incident_answers_201_with_number_status_priority_and_version(world, desk):
    response = world.api(desk.employee).post("/incidents", json={
        "title": "  VPN drops  ", "description": "Every five minutes.",
        "impact": "medium", "urgency": "high",
    })
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["number"] == "INC000001"
    assert body["status"] == "new"
    assert body["priority"] == 2
    assert body["version"] == 1
    assert body["title"] == "VPN drops"
    assert body["requester"] == "emma"
    assert body["requester_name"] == "Emma Employee"
    assert body["channel"] == "api"
    assert body["reopen_count"] == 0
    assert body["assignee"] is None
    assert body["group"] == "Service Desk"  # the first first-line group triages
    assert body["support_line"] == 1
    assert "cancelled" in body["allowed_transitions"]


def test_incident_without_impact_and_urgency_defaults_to_medium_and_priority_3(world, desk):
    body = world.incident(desk.employee)
    assert (body["impact"], body["urgency"], body["priority"]) == ("medium", "medium", 3)


def test_incident_numbers_are_zero_padded_sequential_and_unique(world, desk):
    numbers = [world.incident(desk.employee, title=f"t{i}")["number"] for i in range(12)]
    assert numbers == [f"INC{i:06d}" for i in range(1, 13)]
    assert len(set(numbers)) == 12


def test_incident_numbers_are_never_reused_even_after_a_row_disappears(world, desk):
    world.incident(desk.employee)
    last = world.incident(desk.employee)["number"]
    assert last == "INC000002"
    # Whatever happens to the row (a purge, a restore from an older backup of the
    # tickets), the counter moves on.
    ticket_id = db.session.scalar(select(Ticket.id).where(Ticket.number == last))
    db.session.execute(delete(Incident.__table__).where(Incident.__table__.c.id == ticket_id))
    db.session.execute(delete(Ticket.__table__).where(Ticket.__table__.c.id == ticket_id))
    db.session.commit()
    assert world.incident(desk.employee)["number"] == "INC000003"


def test_a_refused_create_does_not_use_up_a_number(world, desk):
    api = world.api(desk.employee)
    assert world.incident(desk.employee)["number"] == "INC000001"
    assert api.post("/incidents", json={"title": "x", "priority": 1}).status_code == 403
    assert api.post("/incidents", json={"title": "x", "category_id": 999}).status_code == 422
    assert api.post("/incidents", json={}).status_code == 422
    assert world.incident(desk.employee)["number"] == "INC000002"
    assert db.session.get(TicketCounter, "INC").value == 2


def test_priority_follows_the_default_matrix_for_all_nine_impact_urgency_pairs(world, desk):
    api = world.api(desk.employee)
    got = {}
    for (impact, urgency) in DEFAULT_MATRIX:
        response = api.post("/incidents", json={"title": f"{impact}/{urgency}",
                                                "impact": impact, "urgency": urgency})
        assert response.status_code == 201
        got[(impact, urgency)] = response.get_json()["priority"]
    assert got == DEFAULT_MATRIX


def test_the_priority_matrix_is_readable_by_everyone(world, desk):
    response = world.api(desk.employee).get("/priority-matrix")
    assert response.status_code == 200
    cells = {(c["impact"], c["urgency"]): c["priority"] for c in response.get_json()["cells"]}
    assert cells == DEFAULT_MATRIX


def test_after_an_admin_changes_the_matrix_new_incidents_use_it(world, desk):
    new_matrix = {pair: 6 - p for pair, p in DEFAULT_MATRIX.items()}  # turned upside down
    response = world.api(desk.admin).put("/priority-matrix", json={"cells": [
        {"impact": i, "urgency": u, "priority": p} for (i, u), p in new_matrix.items()
    ]})
    assert response.status_code == 200, response.get_json()
    cells = {(c["impact"], c["urgency"]): c["priority"] for c in response.get_json()["cells"]}
    assert cells == new_matrix
    api = world.api(desk.employee)
    for (impact, urgency), priority in new_matrix.items():
        created = api.post("/incidents", json={"title": "t", "impact": impact,
                                               "urgency": urgency}).get_json()
        assert created["priority"] == priority, (impact, urgency)


def test_changing_one_cell_of_the_matrix_keeps_the_others(world, desk):
    response = world.api(desk.admin).put("/priority-matrix", json={"cells": [
        {"impact": "low", "urgency": "low", "priority": 4}]})
    assert response.status_code == 200
    cells = {(c["impact"], c["urgency"]): c["priority"] for c in response.get_json()["cells"]}
    assert cells == {**DEFAULT_MATRIX, ("low", "low"): 4}


@pytest.mark.parametrize("role", ["employee", "agent", "manager"])
def test_only_an_admin_may_change_the_priority_matrix(world, desk, role):
    response = world.api(getattr(desk, role)).put("/priority-matrix", json={"cells": [
        {"impact": "low", "urgency": "low", "priority": 1}]})
    assert response.status_code == 403
    assert world.incident(desk.employee, impact="low", urgency="low")["priority"] == 5


def test_an_invalid_matrix_cell_is_refused_and_changes_nothing(world, desk):
    api = world.api(desk.admin)
    for cell in ({"impact": "huge", "urgency": "low", "priority": 1},
                 {"impact": "low", "urgency": "low", "priority": 9},
                 {"impact": "low", "urgency": "low", "priority": "1"}):
        response = api.put("/priority-matrix", json={"cells": [
            {"impact": "high", "urgency": "high", "priority": 5}, cell]})
        assert response.status_code == 422, cell
        assert "cells" in response.get_json()["error"]["fields"]
    cells = {(c["impact"], c["urgency"]): c["priority"]
             for c in api.get("/priority-matrix").get_json()["cells"]}
    assert cells == DEFAULT_MATRIX


# --- reading and editing ---------------------------------------------------------------


def test_requester_reads_their_incident_by_number(world, desk):
    created = world.incident(desk.employee, description="Paper everywhere.")
    response = world.api(desk.employee).get(f"/incidents/{created['number']}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["number"] == created["number"]
    assert body["description"] == "Paper everywhere."
    assert body["version"] == 1
    datetime.fromisoformat(body["created_at"])


def test_changing_impact_recomputes_priority_and_bumps_the_version(world, desk):
    created = world.incident(desk.employee, impact="low", urgency="low")
    assert created["priority"] == 5
    api = world.api(desk.agent)
    response = api.patch(f"/incidents/{created['number']}",
                         json={"impact": "high", "version": created["version"]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["impact"], body["urgency"], body["priority"]) == ("high", "low", 3)
    assert body["version"] == created["version"] + 1
    response = api.patch(f"/incidents/{created['number']}",
                         json={"urgency": "high", "version": body["version"]})
    assert response.get_json()["priority"] == 1


def test_an_edit_is_audited_field_by_field_with_who_when_old_and_new(world, desk):
    created = world.incident(desk.employee, impact="low", urgency="low", title="Old title")
    before = datetime.now().astimezone()
    response = world.api(desk.agent).patch(f"/incidents/{created['number']}", json={
        "impact": "high", "title": "New title", "version": 1})
    assert response.status_code == 200
    history = world.api(desk.agent).get(f"/incidents/{created['number']}/history").get_json()
    changes = {e["field"]: e for e in history if e["action"] == "updated"}
    assert set(changes) == {"impact", "priority", "title"}
    assert (changes["impact"]["old_value"], changes["impact"]["new_value"]) == ("low", "high")
    assert (changes["priority"]["old_value"], changes["priority"]["new_value"]) == ("5", "3")
    assert (changes["title"]["old_value"], changes["title"]["new_value"]) == ("Old title",
                                                                              "New title")
    for entry in changes.values():
        assert entry["actor"] == "agent1"
        assert entry["actor_name"] == "agent1"
        at = datetime.fromisoformat(entry["at"])
        assert at.tzinfo is not None
        assert abs((at - before).total_seconds()) < 60


def test_an_edit_that_changes_nothing_writes_no_audit_entry(world, desk):
    created = world.incident(desk.employee, impact="low")
    api = world.api(desk.agent)
    before = api.get(f"/incidents/{created['number']}/history").get_json()
    response = api.patch(f"/incidents/{created['number']}",
                         json={"impact": "low", "version": 1})
    assert response.status_code == 200
    assert api.get(f"/incidents/{created['number']}/history").get_json() == before


# --- categories --------------------------------------------------------------------------


@pytest.fixture
def categories(desk):
    hardware = create_category(None, "Hardware")
    printer = create_category(None, "Printer", hardware.id)
    laptop = create_category(None, "Laptop", hardware.id)
    network = create_category(None, "Network", None, "Network Team")
    vpn = create_category(None, "VPN", network.id)

    class Categories:
        pass

    for name, category in dict(hardware=hardware, printer=printer, laptop=laptop,
                               network=network, vpn=vpn).items():
        setattr(Categories, name, category.id)
    return Categories


def test_incident_takes_a_category_and_one_of_its_subcategories(world, desk, categories):
    body = world.incident(desk.employee, category_id=categories.hardware,
                          subcategory_id=categories.printer)
    assert (body["category"], body["subcategory"]) == ("Hardware", "Printer")
    assert (body["category_id"], body["subcategory_id"]) == (categories.hardware,
                                                             categories.printer)


def test_a_category_with_a_default_group_routes_the_incident_there(world, desk, categories):
    body = world.incident(desk.employee, category_id=categories.network)
    assert body["group"] == "Network Team"
    assert body["support_line"] == 2


def test_a_subcategory_alone_implies_its_category(world, desk, categories):
    body = world.incident(desk.employee, subcategory_id=categories.vpn)
    assert (body["category"], body["subcategory"]) == ("Network", "VPN")


def test_a_subcategory_of_another_category_is_refused_naming_subcategory_id(world, desk,
                                                                              categories):
    api = world.api(desk.employee)
    response = api.post("/incidents", json={"title": "x", "category_id": categories.hardware,
                                            "subcategory_id": categories.vpn})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"subcategory_id"}
    assert _count_incidents() == 0


def test_a_subcategory_given_as_the_category_is_refused_naming_category_id(world, desk,
                                                                             categories):
    response = world.api(desk.employee).post("/incidents", json={
        "title": "x", "category_id": categories.printer})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"category_id"}


@pytest.mark.parametrize("field", ["category_id", "subcategory_id"])
def test_an_unknown_category_is_refused_naming_the_field(world, desk, categories, field):
    response = world.api(desk.employee).post("/incidents", json={"title": "x", field: 9999})
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    assert _count_incidents() == 0


def test_patching_in_a_subcategory_of_another_category_changes_nothing(world, desk, categories):
    created = world.incident(desk.employee, category_id=categories.hardware,
                             subcategory_id=categories.printer)
    api = world.api(desk.employee)
    response = api.patch(f"/incidents/{created['number']}",
                         json={"subcategory_id": categories.vpn, "version": 1})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"subcategory_id"}
    after = api.get(f"/incidents/{created['number']}").get_json()
    assert (after["category"], after["subcategory"], after["version"]) == ("Hardware",
                                                                           "Printer", 1)


def test_changing_the_category_drops_a_subcategory_that_no_longer_fits(world, desk, categories):
    created = world.incident(desk.employee, category_id=categories.hardware,
                             subcategory_id=categories.printer)
    response = world.api(desk.employee).patch(f"/incidents/{created['number']}", json={
        "category_id": categories.network, "version": 1})
    assert response.status_code == 200
    assert (response.get_json()["category"], response.get_json()["subcategory"]) == (
        "Network", None)


def test_categories_are_listed_for_every_signed_in_user(world, desk, categories):
    response = world.api(desk.employee).get("/categories")
    assert response.status_code == 200
    names = {(c["name"], c["parent_id"]) for c in response.get_json()}
    assert ("Printer", categories.hardware) in names
    assert ("Hardware", None) in names


def test_only_an_admin_creates_categories(world, desk):
    assert world.api(desk.agent).post("/categories", json={"name": "X"}).status_code == 403
    response = world.api(desk.admin).post("/categories", json={"name": "X"})
    assert response.status_code == 201
    sub = world.api(desk.admin).post("/categories", json={
        "name": "Y", "parent_id": response.get_json()["id"]})
    assert sub.status_code == 201


# --- comments ----------------------------------------------------------------------------


def test_public_replies_and_internal_notes_are_kept_apart(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    reply = agent.post(f"/incidents/{number}/comments", json={"body": "On my way."})
    note = agent.post(f"/incidents/{number}/comments",
                      json={"body": "User is on the VIP list.", "public": False})
    assert (reply.status_code, note.status_code) == (201, 201)
    assert reply.get_json()["public"] is True
    assert note.get_json()["public"] is False
    staff_view = agent.get(f"/incidents/{number}/comments").get_json()
    assert [c["body"] for c in staff_view] == ["On my way.", "User is on the VIP list."]


def test_requester_does_not_see_internal_notes(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    agent.post(f"/incidents/{number}/comments", json={"body": "secret", "public": False})
    agent.post(f"/incidents/{number}/comments", json={"body": "Hello Emma"})
    response = world.api(desk.employee).get(f"/incidents/{number}/comments")
    assert response.status_code == 200
    assert [c["body"] for c in response.get_json()] == ["Hello Emma"]
    assert all(c["public"] for c in response.get_json())


def test_requester_cannot_write_an_internal_note(world, desk):
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.employee)
    response = api.post(f"/incidents/{number}/comments", json={"body": "x", "public": False})
    assert response.status_code == 403
    assert "public" in response.get_json()["error"]["fields"]
    assert world.api(desk.agent).get(f"/incidents/{number}/comments").get_json() == []


def test_each_comment_is_signed_with_its_authors_display_name(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.user("agent", "alex", groups=[desk.l1], display_name="Alex Agent")
    world.api(agent).post(f"/incidents/{number}/comments", json={"body": "Hi"})
    world.api(desk.employee).post(f"/incidents/{number}/comments", json={"body": "Thanks"})
    comments = world.api(desk.employee).get(f"/incidents/{number}/comments").get_json()
    assert [(c["author"], c["author_name"]) for c in comments] == [
        ("alex", "Alex Agent"), ("emma", "Emma Employee")]
    for comment in comments:
        datetime.fromisoformat(comment["created_at"])


def test_the_author_of_a_comment_is_the_caller_whatever_the_body_says(world, desk):
    number = world.incident(desk.employee)["number"]
    response = world.api(desk.employee).post(f"/incidents/{number}/comments", json={
        "body": "x", "author": "agent1"})
    assert response.status_code == 422
    assert "author" in response.get_json()["error"]["fields"]
    response = world.api(desk.employee).post(f"/incidents/{number}/comments", json={"body": "x"})
    assert response.get_json()["author"] == "emma"


@pytest.mark.parametrize("body", ["", "   ", None])
def test_an_empty_comment_is_refused(world, desk, body):
    number = world.incident(desk.employee)["number"]
    response = world.api(desk.employee).post(f"/incidents/{number}/comments", json={"body": body})
    assert response.status_code == 422
    assert "body" in response.get_json()["error"]["fields"]


def test_the_first_public_staff_reply_sets_first_response(world, desk):
    number = world.incident(desk.employee)["number"]
    world.api(desk.agent).post(f"/incidents/{number}/comments",
                               json={"body": "note", "public": False})
    assert world.api(desk.agent).get(f"/incidents/{number}").get_json()[
        "first_response_at"] is None
    world.api(desk.agent).post(f"/incidents/{number}/comments", json={"body": "Looking"})
    assert world.api(desk.agent).get(f"/incidents/{number}").get_json()[
        "first_response_at"] is not None


# --- history -----------------------------------------------------------------------------


def test_history_records_creation_assignment_transitions_and_comments(world, desk):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    agent.post(f"/incidents/{number}/transition", json={"to": "assigned", "assignee": "agent1"})
    agent.post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    agent.post(f"/incidents/{number}/comments", json={"body": "Working on it"})
    history = agent.get(f"/incidents/{number}/history").get_json()
    rows = [(e["action"], e["field"], e["old_value"], e["new_value"], e["actor"])
            for e in history]
    assert rows[0] == ("created", "number", None, number, "emma")
    assert ("transition", "status", "new", "assigned", "agent1") in rows
    assert ("transition", "assignee", None, "agent1", "agent1") in rows
    assert ("transition", "status", "assigned", "in_progress", "agent1") in rows
    assert rows[-1][0] == "commented"
    ids = [e["id"] for e in history]
    assert ids == sorted(ids)


def test_requesters_history_hides_internal_note_entries(world, desk):
    number = world.incident(desk.employee)["number"]
    world.api(desk.agent).post(f"/incidents/{number}/comments",
                               json={"body": "secret", "public": False})
    world.api(desk.agent).post(f"/incidents/{number}/comments", json={"body": "hello"})
    staff = [e["action"] for e in world.api(desk.agent).get(
        f"/incidents/{number}/history").get_json()]
    mine = [e["action"] for e in world.api(desk.employee).get(
        f"/incidents/{number}/history").get_json()]
    assert "internal_note" in staff
    assert "internal_note" not in mine
    assert "commented" in mine


# --- the requester answers -----------------------------------------------------------------


def _pending(world, desk, reason):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    agent.post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    response = agent.post(f"/incidents/{number}/transition",
                          json={"to": "pending", "pending_reason": reason})
    assert response.status_code == 200, response.get_json()
    return number


def test_requesters_public_reply_moves_an_incident_awaiting_them_back_to_in_progress(world,
                                                                                     desk):
    number = _pending(world, desk, "awaiting_requester")
    response = world.api(desk.employee).post(f"/incidents/{number}/comments",
                                             json={"body": "Here is the log."})
    assert response.status_code == 201
    body = world.api(desk.agent).get(f"/incidents/{number}").get_json()
    assert body["status"] == "in_progress"
    assert body["pending_reason"] is None
    history = world.api(desk.agent).get(f"/incidents/{number}/history").get_json()
    rows = [(e["action"], e["field"], e["old_value"], e["new_value"], e["actor"])
            for e in history]
    assert ("transition", "status", "pending", "in_progress", "emma") in rows
    assert ("requester_replied", "pending_reason", "awaiting_requester", None, "emma") in rows


def test_a_reply_while_waiting_on_a_vendor_leaves_the_incident_pending(world, desk):
    number = _pending(world, desk, "awaiting_vendor")
    world.api(desk.employee).post(f"/incidents/{number}/comments", json={"body": "Any news?"})
    body = world.api(desk.agent).get(f"/incidents/{number}").get_json()
    assert (body["status"], body["pending_reason"]) == ("pending", "awaiting_vendor")


def test_a_staff_reply_leaves_an_incident_awaiting_the_requester_pending(world, desk):
    number = _pending(world, desk, "awaiting_requester")
    world.api(desk.agent).post(f"/incidents/{number}/comments", json={"body": "Reminder"})
    assert world.api(desk.agent).get(f"/incidents/{number}").get_json()["status"] == "pending"


@pytest.mark.parametrize("default_group, status", [
    ("Network Team", 201), (None, 201), ("No Such Group", 422), (5, 422), ({"a": 1}, 422),
    (["Network Team"], 422), (True, 422), ("x" * 151, 422),
])
def test_a_categorys_default_group_must_be_the_name_of_a_group(world, desk, default_group,
                                                                status):
    response = world.api(desk.admin).post("/categories", json={
        "name": "Printers", "default_group": default_group})
    assert response.status_code == status, response.get_json()
    if status == 422:
        assert list(response.get_json()["error"]["fields"]) == ["default_group"]
    else:
        assert response.get_json()["default_group"] == default_group


def test_concurrent_creates_get_unique_gapless_numbers(world, desk, app):
    """Several clients at once (each thread its own app context and database session)."""
    import threading

    tokens = [world.api(user).token for user in (desk.employee, desk.other_employee,
                                                  desk.agent, desk.admin)]
    db.session.commit()
    numbers, failures = [], []

    def client(token):
        with app.app_context():
            http = app.test_client()
            for i in range(8):
                response = http.post("/api/v1/incidents", json={"title": f"parallel {i}"},
                                     headers={"Authorization": f"Bearer {token}"})
                if response.status_code == 201:
                    numbers.append(response.get_json()["number"])
                else:
                    failures.append(response.get_data(as_text=True))
            db.session.remove()

    threads = [threading.Thread(target=client, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(numbers) == [f"INC{i:06d}" for i in range(1, 33)]
