"""SLA calendars and policies through the API (validation, permissions, optimistic
locking), "breaches next" (order, paging through tickets without a due date, the index)
and the SLA on the pages. Every database test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from werkzeug.security import generate_password_hash

from servicedesk.demo import seed_sla
from servicedesk.identity import service as identity
from servicedesk.extensions import db
from servicedesk.sla.models import SlaCalendar, SlaPolicy
from servicedesk.tickets.admin import create_category
from test_web_pages import PASSWORD, signed_in, text_of

UTC = timezone.utc
OFFICE_WEEK = {str(d): [["09:00", "17:00"]] for d in range(5)}


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _fields(response) -> dict:
    return response.get_json()["error"]["fields"]


@pytest.fixture
def admin(world, desk):
    return world.api(desk.admin)


@pytest.fixture
def calendar(admin):
    response = admin.post("/sla/calendars", json={"name": "Office", "timezone": "Europe/Berlin",
                                                  "week": OFFICE_WEEK})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- calendars ---------------------------------------------------------------------------


def test_an_admin_creates_reads_and_lists_a_calendar(world, desk, admin):
    response = admin.post("/sla/calendars", json={
        "name": " Office ", "timezone": "Europe/Berlin",
        "week": {"0": [["13:00", "17:00"], ["08:00", "12:00"]], "6": [["22:00", "24:00"]]},
        "holidays": ["2026-12-25", ["2026-12-24", "2026-12-26"], "2026-01-01"]})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["name"] == "Office" and body["version"] == 1
    # Stored normalised: intervals sorted, holidays merged and sorted.
    assert body["week"] == {"0": [["08:00", "12:00"], ["13:00", "17:00"]],
                            "6": [["22:00", "24:00"]]}
    assert body["holidays"] == ["2026-01-01", ["2026-12-24", "2026-12-26"]]
    agent = world.api(desk.agent)
    assert agent.get(f"/sla/calendars/{body['id']}").get_json() == body
    assert [c["name"] for c in agent.get("/sla/calendars").get_json()] == ["Office"]


@pytest.mark.parametrize("change, field, reason", [
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"week": {"0": [["9.00", "17:00"]]}}, "week", "not a time of day"),
    ({"week": {"0": [["25:00", "26:00"]]}}, "week", "not a time of day"),
    ({"week": {"0": [["17:00", "09:00"]]}}, "week", "ends at or before it starts"),
    ({"week": {"0": [["09:00", "13:00"], ["12:00", "17:00"]]}}, "week", "overlap"),
    ({"week": {"7": [["09:00", "17:00"]]}}, "week", "outside 0..6"),
    ({"week": {"x": [["09:00", "17:00"]]}}, "week", "outside 0..6"),
    ({"week": {}}, "week", "no working time"),
    ({"week": {"0": [["09:00"]]}}, "week", "[start, end]"),
    ({"holidays": ["2026-13-01"]}, "holidays", "YYYY-MM-DD"),
    ({"holidays": [["2026-12-31", "2026-12-24"]]}, "holidays", "ends before it starts"),
    ({"holidays": [5]}, "holidays", "YYYY-MM-DD"),
    ({"name": ""}, "name", "between 1 and 120"),
])
def test_an_invalid_calendar_is_a_422_naming_the_field_and_changes_nothing(admin, change, field,
                                                                          reason):
    body = {"name": "Office", "timezone": "Europe/Berlin", "week": OFFICE_WEEK, **change}
    response = admin.post("/sla/calendars", json=body)
    assert response.status_code == 422, response.get_json()
    fields = _fields(response)
    assert set(fields) == {field}
    assert reason.lower() in " ".join(fields[field]).lower()
    assert _count(SlaCalendar) == 0


def test_calendar_names_are_unique(admin, calendar):
    response = admin.post("/sla/calendars", json={"name": "Office", "timezone": "UTC",
                                                  "week": OFFICE_WEEK})
    assert response.status_code == 409
    assert set(_fields(response)) == {"name"}
    assert _count(SlaCalendar) == 1


def test_only_admins_write_calendars_and_only_staff_read_them(world, desk, calendar):
    body = {"name": "Other", "timezone": "UTC", "week": OFFICE_WEEK}
    for user in (desk.agent, desk.manager, desk.employee):
        assert world.api(user).post("/sla/calendars", json=body).status_code == 403
        assert world.api(user).put(f"/sla/calendars/{calendar['id']}",
                                   json={"name": "X", "version": 1}).status_code == 403
    assert world.api(desk.employee).get("/sla/calendars").status_code == 403
    assert world.api(desk.employee).get(f"/sla/calendars/{calendar['id']}").status_code == 403
    assert world.api(desk.manager).get("/sla/calendars").status_code == 200
    assert world.api().get("/sla/calendars").status_code == 401
    assert _count(SlaCalendar) == 1
    assert db.session.get(SlaCalendar, calendar["id"]).name == "Office"


def test_calendar_updates_need_the_current_version(admin, calendar):
    url = f"/sla/calendars/{calendar['id']}"
    missing = admin.put(url, json={"name": "Office HQ"})
    assert missing.status_code == 422 and set(_fields(missing)) == {"version"}
    updated = admin.put(url, json={"name": "Office HQ", "version": 1})
    assert updated.status_code == 200, updated.get_json()
    assert updated.get_json()["version"] == 2
    stale = admin.put(url, json={"name": "Lost update", "version": 1})
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "stale_version"
    assert set(_fields(stale)) == {"version"}
    invalid = admin.put(url, json={"week": {"0": [["10:00", "09:00"]]}, "version": 2})
    assert invalid.status_code == 422 and set(_fields(invalid)) == {"week"}
    assert admin.get(url).get_json()["name"] == "Office HQ"
    assert admin.get(url).get_json()["week"] == OFFICE_WEEK
    assert admin.put("/sla/calendars/999", json={"version": 1}).status_code == 404
    assert admin.get("/sla/calendars/99999999999").status_code == 404


# --- policies ----------------------------------------------------------------------------


def test_an_admin_creates_a_policy_with_defaults(world, desk, admin, calendar):
    response = admin.post("/sla/policies", json={
        "name": "Standard", "calendar_id": calendar["id"], "response_minutes": 180,
        "resolution_minutes": 480})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["pause_statuses"] == ["pending:awaiting_requester"]
    assert body["warning_percent"] == 75 and body["active"] is True
    assert body["kinds"] == body["priorities"] == body["service_ids"] == body["category_ids"] == []
    assert body["steps"] == [] and body["calendar"] == "Office" and body["version"] == 1
    second = admin.post("/sla/policies", json={"name": "P1", "calendar_id": calendar["id"],
                                               "priorities": [1], "resolution_minutes": 60})
    assert second.get_json()["position"] == body["position"] + 1
    assert second.get_json()["response_minutes"] is None
    listed = world.api(desk.agent).get("/sla/policies").get_json()
    assert [p["name"] for p in listed] == ["Standard", "P1"]


@pytest.mark.parametrize("change, field", [
    ({"response_minutes": 0}, "response_minutes"),
    ({"response_minutes": -30}, "response_minutes"),
    ({"resolution_minutes": 0}, "resolution_minutes"),
    ({"resolution_minutes": 1.5}, "resolution_minutes"),
    ({"resolution_minutes": 10**9}, "resolution_minutes"),
    ({"pause_statuses": ["waiting"]}, "pause_statuses"),
    ({"pause_statuses": ["pending:lunch_break"]}, "pause_statuses"),
    ({"pause_statuses": ["resolved"]}, "pause_statuses"),
    ({"warning_percent": 0}, "warning_percent"),
    ({"warning_percent": 100}, "warning_percent"),
    ({"calendar_id": 999}, "calendar_id"),
    ({"calendar_id": None}, "calendar_id"),
    ({"kinds": ["spaceship"]}, "kinds"),
    ({"priorities": [0]}, "priorities"),
    ({"category_ids": [4242]}, "category_ids"),
    ({"name": " "}, "name"),
])
def test_an_invalid_policy_is_a_422_naming_the_field_and_changes_nothing(admin, calendar, change,
                                                                        field):
    body = {"name": "Standard", "calendar_id": calendar["id"], "response_minutes": 60, **change}
    response = admin.post("/sla/policies", json=body)
    assert response.status_code == 422, response.get_json()
    assert field in _fields(response), _fields(response)
    assert _count(SlaPolicy) == 0


def test_pause_statuses_name_the_workflow_statuses_and_reasons(admin, calendar):
    response = admin.post("/sla/policies", json={
        "name": "Vendor waits too", "calendar_id": calendar["id"], "resolution_minutes": 60,
        "pause_statuses": ["pending:awaiting_requester", "pending:awaiting_vendor", "new"]})
    assert response.status_code == 201, response.get_json()
    refused = admin.post("/sla/policies", json={"name": "x", "calendar_id": calendar["id"],
                                                "pause_statuses": ["pending:nap"]})
    reason = " ".join(_fields(refused)["pause_statuses"])
    assert "'pending:nap'" in reason and "pending:awaiting_vendor" in reason


def test_policy_names_are_unique(admin, calendar):
    body = {"name": "Standard", "calendar_id": calendar["id"]}
    assert admin.post("/sla/policies", json=body).status_code == 201
    again = admin.post("/sla/policies", json=body)
    assert again.status_code == 409 and set(_fields(again)) == {"name"}
    other = admin.post("/sla/policies", json={**body, "name": "Other"}).get_json()
    rename = admin.put(f"/sla/policies/{other['id']}", json={"name": "Standard", "version": 1})
    assert rename.status_code == 409 and set(_fields(rename)) == {"name"}
    assert _count(SlaPolicy) == 2


def test_only_admins_write_policies(world, desk, calendar):
    body = {"name": "Standard", "calendar_id": calendar["id"]}
    for user in (desk.agent, desk.manager, desk.employee):
        response = world.api(user).post("/sla/policies", json=body)
        assert response.status_code == 403, user
    assert world.api(desk.employee).get("/sla/policies").status_code == 403
    assert _count(SlaPolicy) == 0
    created = world.api(desk.admin).post("/sla/policies", json=body).get_json()
    put = world.api(desk.agent).put(f"/sla/policies/{created['id']}",
                                    json={"warning_percent": 50, "version": 1})
    assert put.status_code == 403
    assert world.api(desk.agent).get(f"/sla/policies/{created['id']}").get_json() == created


def test_policy_updates_are_partial_and_optimistically_locked(admin, calendar):
    created = admin.post("/sla/policies", json={
        "name": "Standard", "calendar_id": calendar["id"], "response_minutes": 60}).get_json()
    url = f"/sla/policies/{created['id']}"
    updated = admin.put(url, json={"warning_percent": 50, "priorities": [3, 3, 4], "version": 1})
    assert updated.status_code == 200, updated.get_json()
    body = updated.get_json()
    assert body["warning_percent"] == 50 and body["priorities"] == [3, 4]
    assert body["response_minutes"] == 60 and body["version"] == 2
    stale = admin.put(url, json={"warning_percent": 90, "version": 1})
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"
    bad = admin.put(url, json={"pause_statuses": ["closed"], "version": 2})
    assert bad.status_code == 422 and set(_fields(bad)) == {"pause_statuses"}
    cleared = admin.put(url, json={"response_minutes": None, "version": 2})
    assert cleared.status_code == 200 and cleared.get_json()["response_minutes"] is None
    assert admin.put(url, json={"version": 3, "steps": [{}]}).status_code == 422
    assert admin.get(url).get_json()["warning_percent"] == 50


def test_the_first_active_policy_by_position_matching_kind_priority_and_category_wins(
        world, desk, admin, calendar):
    network = create_category(None, "Network")
    vpn = create_category(None, "VPN", network.id)
    def policy(name, position, **rules):
        response = admin.post("/sla/policies", json={
            "name": name, "position": position, "calendar_id": calendar["id"],
            "resolution_minutes": 60, **rules})
        assert response.status_code == 201, response.get_json()
        return response.get_json()
    policy("Catch-all", 100)
    vpn_policy = policy("VPN", 20, category_ids=[vpn.id])
    policy("Urgent", 10, priorities=[1, 2], kinds=["incident"])
    assert world.incident(desk.employee)["sla"]["policy"] == "Catch-all"
    assert world.incident(desk.employee, impact="high")["sla"]["policy"] == "Urgent"
    by_subcategory = world.incident(desk.employee, category_id=network.id, subcategory_id=vpn.id)
    assert by_subcategory["sla"]["policy"] == "VPN"
    admin.put(f"/sla/policies/{vpn_policy['id']}", json={"active": False, "version": 1})
    again = world.incident(desk.employee, category_id=network.id, subcategory_id=vpn.id)
    assert again["sla"]["policy"] == "Catch-all"


def test_without_policies_incidents_have_no_sla(world, desk):
    body = world.incident(desk.employee)
    assert body["sla"] == {"policy": None, "targets": None, "response": None,
                           "resolution": None}
    assert body["escalation_level"] == 0


# --- breaches next -------------------------------------------------------------------------


class FrozenClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def frozen(monkeypatch):
    clock = FrozenClock(datetime(2026, 1, 12, 8, 0, tzinfo=UTC))  # Monday 09:00 in Berlin
    for where in ("servicedesk.types.utcnow", "servicedesk.tickets.service.utcnow",
                  "servicedesk.incidents.service.utcnow", "servicedesk.tickets.models.utcnow"):
        monkeypatch.setattr(where, clock)
    return clock


@pytest.fixture
def due_mix(world, desk, frozen):
    """Open incidents with known due instants (and two paused: no due), one resolved."""
    seed_sla()
    agent = world.api(desk.agent)
    made = {}

    def raise_at(name, minutes, **fields):
        frozen.now = datetime(2026, 1, 12, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        made[name] = world.incident(desk.employee, title=name, **fields)["number"]

    raise_at("A", 0)                                     # Standard: response due 12:00
    raise_at("B", 10, impact="high", urgency="high")     # P1: response due 09:40
    raise_at("C", 20)                                    # paused below: no due
    raise_at("D", 30)                                    # Standard: due 12:30
    raise_at("E", 40)                                    # resolved below: not open
    raise_at("F", 50, impact="high")                     # priority 2, paused: no due
    frozen.now = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
    for name in ("C", "F"):
        assert agent.post(f"/incidents/{made[name]}/transition", json={
            "to": "pending", "pending_reason": "awaiting_requester"}).status_code == 200
    agent.post(f"/incidents/{made['E']}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "ok"})
    return made


def test_breaches_next_lists_open_tickets_by_due_instant(world, desk, due_mix):
    response = world.api(desk.agent).get("/sla/breaches-next")
    assert response.status_code == 200, response.get_json()
    items = response.get_json()
    assert [i["title"] for i in items] == ["B", "A", "D"]
    assert items[0]["sla_due_at"] == "2026-01-12T08:40:00+00:00"
    assert world.api(desk.agent).get("/sla/breaches-next?limit=1").get_json()[0]["title"] == "B"
    assert world.api(desk.employee).get("/sla/breaches-next").status_code == 403
    assert world.api(desk.agent).get("/sla/breaches-next?limit=0").status_code == 400


def test_the_due_sort_pages_through_tickets_without_a_due_instant_too(world, desk, due_mix):
    api = world.api(desk.agent)
    seen, cursor = [], None
    for _ in range(5):
        query = {"sort": "due", "open": "true", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/incidents", query_string=query).get_json()
        seen.append([i["title"] for i in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Due first (earliest first), then the paused ones: by priority, then age.
    assert seen == [["B", "A"], ["D", "F"], ["C"]]


def _plan(app, call, marker="FROM tickets"):
    captured = []

    def listener(_conn, _cursor, statement, parameters, _context, _many):
        if marker in statement:
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with app.app_context():
            assert call().status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    statement, parameters = captured[0]
    with db.engine.connect() as conn:
        return [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                        parameters)]


@pytest.mark.parametrize("who", ["agent", "admin"])
def test_breaches_next_and_the_due_queue_read_the_due_index_on_sqlite(app, world, desk, due_mix,
                                                                      who):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL chooses by statistics")
    api = world.api(getattr(desk, who))
    plan = _plan(app, lambda: api.get("/sla/breaches-next"))
    assert any("ix_tickets_sla_due" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan
    plan = _plan(app, lambda: api.get("/incidents?open=true&sort=due&limit=50"))
    assert any("ix_tickets_sla_due" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan


# --- pages ---------------------------------------------------------------------------------


@pytest.fixture
def page_users(world, desk, monkeypatch):
    """An agent of the Service Desk and a requester who can sign in (cheap hashes)."""
    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    return (world.user("agent", "pageagent", groups=[desk.l1], password=PASSWORD),
            world.user("requester", "pagereq", password=PASSWORD))


def _rows(html: str) -> list[tuple[str, str]]:
    """(number, SLA class) of each queue row, in order."""
    return re.findall(r'<tr data-number="(INC\d+)"(?: class="([^"]*)")?', html)


def test_the_queue_colours_rows_and_sorts_by_breaches_next(app, page_users, due_mix, frozen):
    frozen.now = datetime(2026, 1, 12, 10, 30, tzinfo=UTC)  # 11:30 in Berlin
    client = signed_in(app, page_users[0])
    by_due = client.get("/console?sort=due")
    assert by_due.status_code == 200
    title = {number: name for name, number in due_mix.items()}
    rows = [(title[number], css) for number, css in _rows(by_due.get_data(as_text=True))]
    # B's response was due 09:40; A is past 75 % of its 3 h; the rest are within.
    assert rows == [("B", "sla-breached"), ("A", "sla-warning"), ("D", "sla-ok"),
                    ("F", "sla-ok"), ("C", "sla-ok")]
    html = by_due.get_data(as_text=True)
    assert '<option value="due" selected>' in html and "Breaches next" in html
    by_priority = client.get("/console")
    assert [title[n] for n, _css in _rows(by_priority.get_data(as_text=True))] == \
        ["B", "F", "A", "C", "D"]
    assert client.get("/console?sort=-created_at").status_code == 400


def test_the_portal_shows_how_long_it_is_open_and_its_target(app, world, page_users, frozen):
    seed_sla()
    frozen.now = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
    number = world.incident(page_users[1])["number"]
    client = signed_in(app, page_users[1])
    frozen.now = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    listing = text_of(client.get("/portal"))
    assert "Target" in listing and "Resolution due" in listing and "overdue" not in listing
    detail = client.get(f"/portal/incidents/{number}")
    assert detail.status_code == 200
    target = re.search(r'<dd id="sla-target">(.*?)</dd>', detail.get_data(as_text=True), re.S)
    assert "Resolution due" in target.group(1) and "2026-01-12T16:00:00+00:00" in target.group(1)
    assert "2 h 0 min" in text_of(detail)  # open for
    frozen.now = datetime(2026, 1, 12, 17, 0, tzinfo=UTC)
    assert "overdue" in text_of(client.get(f"/portal/incidents/{number}"))
    assert "overdue" in text_of(client.get("/portal"))


# --- fuzz ----------------------------------------------------------------------------------

FIELDS = ["name", "timezone", "week", "holidays", "position", "active", "kinds", "priorities",
          "service_ids", "category_ids", "response_minutes", "resolution_minutes",
          "calendar_id", "pause_statuses", "warning_percent", "steps", "version"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
    st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from([0, 1, 99, 100, 2**31, "09:00", "24:00", "Europe/Berlin", "pending",
                     "pending:awaiting_requester", "2026-12-25", "\x00", "💥", "1"]),
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)
BODIES = st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(body=BODIES, path=st.sampled_from(["/sla/calendars", "/sla/calendars/1",
                                          "/sla/policies", "/sla/policies/1"]))
def test_no_body_makes_the_sla_api_fail(admin, calendar, body, path):
    method = "PUT" if path[-1].isdigit() else "POST"
    response = admin.request(method, path, json=body)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert set(response.get_json()["error"]) == {"code", "message", "fields"}
