"""Who may do what to an incident: a role x action matrix, every cell asserted exactly.

What an actor may not see does not exist for them: 404, never 403, and never in a list.
"""

from __future__ import annotations

import pytest

from servicedesk.identity.service import deactivate_user, issue_token
from servicedesk.incidents.service import create_incident

ACTIONS = ("detail", "patch", "transition", "comment", "history", "list")

# role -> the status each action must get on an incident raised by `employee` in the
# first-line group "Service Desk", and whether the list holds that incident.
EXPECTED = {
    #                     detail patch transition comment history list  listed
    "requester":          (200, 200, 403, 201, 200, 200, True),
    "other_requester":    (404, 404, 404, 404, 404, 200, False),
    "group_agent":        (200, 200, 200, 201, 200, 200, True),
    "other_agent":        (404, 404, 404, 404, 404, 200, False),
    "line_manager":       (200, 200, 200, 201, 200, 200, True),
    "other_line_manager": (404, 404, 404, 404, 404, 200, False),
    "admin":              (200, 200, 200, 201, 200, 200, True),
}


@pytest.fixture
def actors(world, desk):
    other_manager = world.user("manager", "netboss", groups=[desk.l2])
    return {
        "requester": desk.employee,
        "other_requester": desk.other_employee,
        "group_agent": desk.agent,
        "other_agent": desk.l2_agent,
        "line_manager": desk.manager,
        "other_line_manager": other_manager,
        "admin": desk.admin,
    }


def _act(api, action, number):
    path = f"/incidents/{number}"
    if action == "detail":
        return api.get(path)
    if action == "patch":
        return api.patch(path, json={"title": "Changed by someone", "version": 1})
    if action == "transition":
        return api.post(path + "/transition", json={"to": "in_progress"})
    if action == "comment":
        return api.post(path + "/comments", json={"body": "Hello"})
    if action == "history":
        return api.get(path + "/history")
    if action == "list":
        return api.get("/incidents?limit=200")
    raise AssertionError(action)


def test_role_by_action_matrix(world, desk, actors):
    mismatches, unexpected_2xx = [], []
    for role, user in actors.items():
        api = world.api(user)
        *statuses, listed = EXPECTED[role]
        assert len(statuses) == len(ACTIONS)
        for action, expected in zip(ACTIONS, statuses):
            # A fresh incident per cell, so no cell depends on what another one did.
            number = create_incident(desk.employee, {"title": f"{role} {action}"},
                                     channel="web").number
            response = _act(api, action, number)
            if response.status_code != expected:
                mismatches.append((role, action, expected, response.status_code))
                if 200 <= response.status_code < 300:
                    unexpected_2xx.append((role, action))
            if response.status_code == 404:
                assert response.get_json()["error"]["code"] == "not_found"
                assert number in response.get_json()["error"]["message"]
            if action == "list":
                numbers = {i["number"] for i in response.get_json()["items"]}
                if (number in numbers) != listed:
                    mismatches.append((role, "listed", listed, number in numbers))
                    if number in numbers:
                        unexpected_2xx.append((role, "listed"))
    assert unexpected_2xx == []
    assert mismatches == []


def test_a_list_never_holds_what_detail_would_404_on(world, desk, actors):
    numbers = [create_incident(desk.employee, {"title": f"t{i}"}, channel="web").number
               for i in range(3)]
    numbers.append(create_incident(desk.other_employee, {"title": "theirs"},
                                   channel="web").number)
    mismatches = []
    for role, user in actors.items():
        api = world.api(user)
        listed = {i["number"] for i in api.get("/incidents?limit=200").get_json()["items"]}
        for number in numbers:
            visible = api.get(f"/incidents/{number}").status_code == 200
            if visible != (number in listed):
                mismatches.append((role, number, visible))
    assert mismatches == []


def test_each_role_lists_exactly_the_incidents_it_may_see(world, desk, actors):
    mine = create_incident(desk.employee, {"title": "mine"}, channel="web").number
    theirs = create_incident(desk.other_employee, {"title": "theirs"}, channel="web").number
    network = create_incident(desk.employee, {"title": "net"}, channel="web").number
    # Route one incident to the second line, as staff would.
    world.api(desk.admin).patch(f"/incidents/{network}",
                                json={"group": "Network Team", "version": 1})
    expected = {
        "requester": {mine, network},
        "other_requester": {theirs},
        "group_agent": {mine, theirs},
        "other_agent": {network},
        "line_manager": {mine, theirs},
        "other_line_manager": {network},
        "admin": {mine, theirs, network},
    }
    for role, user in actors.items():
        listed = {i["number"] for i in world.api(user).get("/incidents").get_json()["items"]}
        assert listed == expected[role], role


def test_the_assignee_keeps_seeing_an_incident_outside_their_groups(world, desk):
    number = create_incident(desk.employee, {"title": "x"}, channel="web").number
    admin = world.api(desk.admin)
    admin.patch(f"/incidents/{number}", json={"group": "Network Team", "assignee": "netagent",
                                              "version": 1})
    # netagent is assigned; the first-line agent is not in Network Team.
    assert world.api(desk.l2_agent).get(f"/incidents/{number}").status_code == 200
    assert world.api(desk.agent).get(f"/incidents/{number}").status_code == 404


def test_agents_see_the_untriaged_pool_and_may_pick_it_up(world, desk):
    from servicedesk.extensions import db
    from servicedesk.tickets.models import Ticket

    number = create_incident(desk.employee, {"title": "x"}, channel="web").number
    db.session.query(Ticket).filter_by(number=number).update(
        {"group_id": None, "support_line": None})
    db.session.commit()
    api = world.api(desk.l2_agent)
    assert api.get(f"/incidents/{number}").status_code == 200
    response = api.post(f"/incidents/{number}/transition",
                        json={"to": "assigned", "assignee": "netagent"})
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["group"], response.get_json()["assignee"]) == ("Network Team",
                                                                               "netagent")


def test_an_unknown_number_and_anothers_incident_look_the_same(world, desk):
    theirs = create_incident(desk.other_employee, {"title": "x"}, channel="web").number
    api = world.api(desk.employee)
    a = api.get(f"/incidents/{theirs}")
    b = api.get("/incidents/INC999999")
    assert a.status_code == b.status_code == 404
    assert a.get_json()["error"]["code"] == b.get_json()["error"]["code"]
    assert a.get_json()["error"]["fields"] == b.get_json()["error"]["fields"]


def test_filtering_by_another_requester_does_not_widen_a_requesters_view(world, desk):
    create_incident(desk.other_employee, {"title": "x"}, channel="web")
    response = world.api(desk.employee).get("/incidents?requester=omid")
    assert response.status_code == 403
    assert "items" not in response.get_json()
    assert set(response.get_json()["error"]["fields"]) == {"requester"}


def test_a_deactivated_users_token_is_refused(world, desk):
    token = issue_token(desk.agent)
    api = world.api(None)
    api.token = token
    assert api.get("/incidents").status_code == 200
    deactivate_user(None, desk.agent)
    for response in (api.get("/incidents"), api.get("/me"),
                     api.post("/incidents", json={"title": "x"})):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_token_of_a_deactivated_user_stays_dead_after_reactivation(world, desk):
    from servicedesk.identity.service import activate_user

    api = world.api(desk.agent)
    deactivate_user(None, desk.agent)
    activate_user(None, desk.agent)
    assert api.get("/incidents").status_code == 401
    assert world.api(desk.agent).get("/incidents").status_code == 200


def test_users_and_groups_are_for_staff_only(world, desk):
    employee = world.api(desk.employee)
    assert employee.get("/users").status_code == 403
    assert employee.get("/groups").status_code == 403
    assert employee.get("/me").get_json()["username"] == "emma"
    assert world.api(desk.agent).get("/groups").status_code == 200


@pytest.mark.parametrize("role", ["employee", "agent", "manager"])
def test_only_admins_create_users_and_groups(world, desk, role):
    api = world.api(getattr(desk, role))
    response = api.post("/users", json={"username": "mallory", "email": "m@example.test",
                                        "role": "admin"})
    assert response.status_code == 403
    assert api.post("/groups", json={"name": "G", "support_line": 1}).status_code == 403
    assert api.patch("/users/root", json={"active": False}).status_code == 403
    from servicedesk.identity.service import get_group, get_user

    assert get_user("mallory") is None
    assert get_group("G") is None
