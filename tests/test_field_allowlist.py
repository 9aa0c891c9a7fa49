"""Writable fields per role, unknown fields and keys, and optimistic locking.

The field-write matrix and the filter/sort fuzz of SECURITY.md: 0 accepted.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from servicedesk.extensions import db
from servicedesk.incidents.models import Incident

# Fields a requester may not write, with a value that would otherwise be valid.
REQUESTER_FORBIDDEN = {
    "priority": 1,
    "status": "resolved",
    "assignee": "agent1",
    "group": "Network Team",
    "requester": "omid",
    "channel": "email",
}


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(Incident))


def _state(api, number) -> dict:
    body = api.get(f"/incidents/{number}").get_json()
    body.pop("open_seconds")
    return body


# --- what a requester may write ------------------------------------------------------------


@pytest.mark.parametrize("field", sorted(REQUESTER_FORBIDDEN))
def test_requester_cannot_set_on_create(world, desk, field):
    response = world.api(desk.employee).post("/incidents", json={
        "title": "x", field: REQUESTER_FORBIDDEN[field]})
    assert response.status_code == 403, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "forbidden_fields"
    assert set(error["fields"]) == {field}
    assert _count() == 0


def test_requester_setting_every_forbidden_field_at_once_is_told_each_one(world, desk):
    response = world.api(desk.employee).post("/incidents", json={
        "title": "x", **REQUESTER_FORBIDDEN})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert set(error["fields"]) == set(REQUESTER_FORBIDDEN)
    for field in REQUESTER_FORBIDDEN:
        assert field in error["message"]
        assert error["fields"][field] and all(isinstance(r, str) for r in error["fields"][field])
    assert _count() == 0


@pytest.mark.parametrize("field", sorted(REQUESTER_FORBIDDEN))
def test_requester_cannot_set_on_patch(world, desk, field):
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.employee)
    before = _state(api, number)
    response = api.patch(f"/incidents/{number}", json={
        field: REQUESTER_FORBIDDEN[field], "title": "Sneaky", "version": 1})
    assert response.status_code == 403
    assert set(response.get_json()["error"]["fields"]) == {field}
    assert response.get_json()["error"]["code"] == "forbidden_fields"
    assert _state(api, number) == before


def test_field_write_matrix_accepts_nothing_forbidden(world, desk):
    """Every forbidden field, through POST and PATCH, as each non-privileged case: 0 accepted."""
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.employee)
    accepted = []
    for field, value in REQUESTER_FORBIDDEN.items():
        for values in ({field: value}, {field: None}, {field: ""}):
            create = api.post("/incidents", json={"title": "x", **values})
            if create.status_code < 300:
                accepted.append(("POST", values))
            patch = api.patch(f"/incidents/{number}", json={**values, "version": 1})
            if patch.status_code < 300:
                accepted.append(("PATCH", values))
    assert accepted == []
    assert _count() == 1
    assert _state(api, number)["version"] == 1


def test_staff_cannot_rewrite_requester_channel_priority_or_status_on_patch(world, desk):
    number = world.incident(desk.employee)["number"]
    for field in ("requester", "channel", "priority", "status"):
        response = world.api(desk.admin).patch(f"/incidents/{number}", json={
            field: REQUESTER_FORBIDDEN[field], "version": 1})
        assert response.status_code == 403, field
        assert set(response.get_json()["error"]["fields"]) == {field}


def test_staff_may_raise_an_incident_for_someone_else_on_another_channel(world, desk):
    response = world.api(desk.agent).post("/incidents", json={
        "title": "Called in", "requester": "emma", "channel": "phone", "assignee": "agent1"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["requester"], body["channel"], body["assignee"], body["status"]) == (
        "emma", "phone", "agent1", "assigned")
    mine = world.api(desk.employee).get("/incidents").get_json()["items"]
    assert [i["number"] for i in mine] == [body["number"]]


def test_staff_cannot_set_priority_or_status_on_create_either(world, desk):
    response = world.api(desk.admin).post("/incidents", json={
        "title": "x", "priority": 1, "status": "closed"})
    assert response.status_code == 403
    assert set(response.get_json()["error"]["fields"]) == {"priority", "status"}
    assert _count() == 0


def test_requester_edits_title_and_description_while_the_incident_is_new(world, desk):
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.employee)
    response = api.patch(f"/incidents/{number}", json={
        "title": "Printer jam on floor 3", "description": "Tray 2.", "version": 1})
    assert response.status_code == 200
    assert (response.get_json()["title"], response.get_json()["description"]) == (
        "Printer jam on floor 3", "Tray 2.")


@pytest.mark.parametrize("status", ["assigned", "in_progress"])
def test_requester_cannot_edit_once_it_has_left_new(world, desk, status):
    number = world.incident(desk.employee)["number"]
    agent = world.api(desk.agent)
    body = {"to": status, "assignee": "agent1"} if status == "assigned" else {"to": status}
    assert agent.post(f"/incidents/{number}/transition", json=body).status_code == 200
    api = world.api(desk.employee)
    before = _state(api, number)
    response = api.patch(f"/incidents/{number}", json={"title": "x",
                                                        "version": before["version"]})
    assert response.status_code == 403
    assert set(response.get_json()["error"]["fields"]) == {"title"}
    assert _state(api, number) == before


# --- unknown body fields ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["bogus", "is_open", "number", "version", "reopen_count",
                                   "requester_id", "created_at", "kind", "password_hash"])
def test_an_unknown_or_read_only_field_on_create_is_a_422_naming_it(world, desk, field):
    response = world.api(desk.agent).post("/incidents", json={"title": "x", field: 1})
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    assert _count() == 0


@pytest.mark.parametrize("field", ["bogus", "number", "is_open", "escalation_count",
                                   "assignee_id", "resolved_at"])
def test_an_unknown_field_on_patch_is_a_422_naming_it(world, desk, field):
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.agent)
    before = _state(api, number)
    response = api.patch(f"/incidents/{number}", json={field: 1, "version": 1})
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    assert _state(api, number) == before


def test_an_unknown_field_on_a_transition_is_a_422_naming_it(world, desk):
    number = world.incident(desk.employee)["number"]
    response = world.api(desk.agent).post(f"/incidents/{number}/transition", json={
        "to": "in_progress", "status": "closed"})
    assert response.status_code == 422
    assert "status" in response.get_json()["error"]["fields"]


# --- unknown query keys and sort keys --------------------------------------------------------

BOGUS_KEYS = [
    "requester__password_hash", "requester__password_hash__startswith",
    "assignee.password_hash", "assignee__password_hash", "password_hash", "password",
    "requester_id", "assignee_id", "group_id", "id", "number", "title", "description",
    "order_by", "ordering", "order", "sort_by", "where", "filter", "filter[status]",
    "status__in", "q", "search", "page", "offset", "__class__", "_sa_instance_state",
    "kind", "token_hash", "requester.username", "Status", "status ", "",
]
BOGUS_SORTS = [
    "password_hash", "-password_hash", "requester__password_hash", "assignee.password_hash",
    "-assignee.password_hash", "requester.password_hash", "id", "-id", "number", "title",
    "status", "priority,id", "priority desc", "created_at;drop table users", "--created_at",
    "+created_at", "created_at ", "CREATED_AT", "requester_id", "group_id", "assignee_id",
    "token_hash", "(select 1)", "1", "-1", "__class__", "", "users.password_hash",
    "tickets.id", "random()",
]


def test_unknown_query_keys_are_refused_with_400_naming_the_key(world, desk):
    world.incident(desk.employee)
    api = world.api(desk.admin)
    accepted = []
    for key in BOGUS_KEYS:
        response = api.get("/incidents?" + urlencode({key: "x"}))
        if response.status_code < 300:
            accepted.append(key)
            continue
        assert response.status_code == 400, (key, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == "bad_query"
        assert key in error["fields"], (key, error)
    assert accepted == []


def test_unknown_sort_keys_are_refused_with_400_naming_sort(world, desk):
    world.incident(desk.employee)
    api = world.api(desk.admin)
    accepted = []
    for sort in BOGUS_SORTS:
        response = api.get("/incidents?" + urlencode({"sort": sort}))
        if response.status_code < 300:
            accepted.append(sort)
            continue
        assert response.status_code == 400, (sort, response.get_json())
        assert list(response.get_json()["error"]["fields"]) == ["sort"]
    assert accepted == []


@pytest.mark.parametrize("query", [
    "status=password_hash", "status=new,bogus", "priority=0", "priority=6", "priority=high",
    "open=maybe", "category_id=x", "category_id=0", "created_after=yesterday",
    "created_before=2026-01-01T00:00:00", "limit=0", "limit=201", "limit=-1", "limit=x",
    "cursor=" + "a" * 501,
])
def test_a_bad_value_for_a_known_query_key_is_a_400_naming_the_key(world, desk, query):
    response = world.api(desk.admin).get("/incidents?" + query)
    assert response.status_code == 400, response.get_json()
    assert list(response.get_json()["error"]["fields"]) == [query.split("=")[0]]


def test_every_documented_sort_key_is_accepted(world, desk):
    world.incident(desk.employee)
    api = world.api(desk.admin)
    for sort in ("created_at", "-created_at", "updated_at", "-updated_at", "priority",
                 "-priority"):
        assert api.get("/incidents?sort=" + sort).status_code == 200, sort


# --- optimistic locking ------------------------------------------------------------------------


def test_a_patch_with_a_stale_version_is_a_409_and_changes_nothing(world, desk):
    number = world.incident(desk.employee)["number"]
    agent, other = world.api(desk.agent), world.api(desk.agent_b)
    assert agent.patch(f"/incidents/{number}", json={"title": "First",
                                                     "version": 1}).status_code == 200
    before = _state(agent, number)
    response = other.patch(f"/incidents/{number}", json={"title": "Second", "version": 1})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "stale_version"
    assert "version" in error["fields"]
    assert _state(agent, number) == before
    assert before["title"] == "First"


def test_a_patch_with_a_future_version_is_a_409(world, desk):
    number = world.incident(desk.employee)["number"]
    response = world.api(desk.agent).patch(f"/incidents/{number}",
                                           json={"title": "x", "version": 7})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "stale_version"


@pytest.mark.parametrize("version", [None, "1", 1.5, True])
def test_a_patch_without_a_valid_version_is_a_422_naming_version(world, desk, version):
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.agent)
    before = _state(api, number)
    body = {"title": "x"} if version is None else {"title": "x", "version": version}
    response = api.patch(f"/incidents/{number}", json=body)
    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["error"]["fields"]) == ["version"]
    assert _state(api, number) == before


def test_each_successful_patch_bumps_the_version_by_one(world, desk):
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.agent)
    for version in (1, 2, 3):
        response = api.patch(f"/incidents/{number}", json={"title": f"v{version}",
                                                            "version": version})
        assert response.get_json()["version"] == version + 1


def test_a_write_racing_between_read_and_commit_is_a_409_not_a_lost_update(world, desk, app,
                                                                            monkeypatch,
                                                                            backend):
    """The version check is also enforced by the UPDATE itself (``WHERE version = ...``)."""
    if backend == "sqlite":
        pytest.skip("SQLite serialises writers from BEGIN: this race cannot happen there")
    import psycopg

    from servicedesk.tickets import service as core
    from servicedesk.tickets.models import AuditEntry

    number = world.incident(desk.employee)["number"]
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    real_check = core.check_version

    def check_then_race(ticket, version):
        real_check(ticket, version)
        # Someone else saves the incident now, after our check, before our commit.
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("UPDATE tickets SET title = 'Theirs', version = version + 1 "
                          "WHERE number = %s", (number,))

    monkeypatch.setattr(core, "check_version", check_then_race)
    audit = db.session.scalar(select(func.count()).select_from(AuditEntry))
    response = world.api(desk.agent).patch(f"/incidents/{number}",
                                           json={"title": "Mine", "version": 1})
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["error"]["code"] == "stale_version"
    monkeypatch.undo()
    body = world.api(desk.agent).get(f"/incidents/{number}").get_json()
    assert (body["title"], body["version"]) == ("Theirs", 2)
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == audit
