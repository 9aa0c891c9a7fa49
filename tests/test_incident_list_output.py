"""The API's incident list (built from plain rows, see servicedesk/incidents/listing.py)
gives exactly what IncidentSchema gives for the same incident, with the same pages.

Each list item is compared with GET /incidents/<number> (the ORM object through
IncidentSchema) while time stands still, across every sort and caller role, with SLA
clocks absent, running, paused, met and breached; and each page's items and cursor
with service.list_incidents (the ORM read the console still uses).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from servicedesk.demo import seed_sla
from servicedesk.extensions import db
from servicedesk.incidents import service
from servicedesk.incidents.service import SORTS
from servicedesk.tickets.admin import create_category


class FrozenClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock(datetime(2026, 1, 12, 8, 0, tzinfo=timezone.utc))  # a Monday
    for where in ("servicedesk.types.utcnow", "servicedesk.tickets.service.utcnow",
                  "servicedesk.incidents.service.utcnow", "servicedesk.tickets.models.utcnow"):
        monkeypatch.setattr(where, frozen)
    return frozen


@pytest.fixture
def incidents(world, desk, clock):
    """Incidents without SLA, then with running, paused, met and breached clocks."""
    staff = world.api(desk.agent)
    parent = create_category(None, "Network")
    child = create_category(None, "Wi-Fi", parent.id)
    numbers = [world.incident(desk.employee, title="Before any policy")["number"]]
    seed_sla()
    for n in range(3):
        clock.now += timedelta(minutes=7)
        numbers.append(world.incident(desk.employee, title=f"Plain {n}",
                                      impact=("high", "medium", "low")[n])["number"])
    clock.now += timedelta(minutes=5)
    full = staff.post("/incidents", json={
        "title": "Wi-Fi down", "requester": desk.employee.username, "group": desk.l1.name,
        "assignee": desk.agent_b.username, "category_id": parent.id,
        "subcategory_id": child.id, "major": True, "impact": "high", "urgency": "high"})
    assert full.status_code == 201, full.get_json()
    numbers.append(full.get_json()["number"])
    clock.now += timedelta(hours=1)
    paused = staff.post(f"/incidents/{numbers[1]}/transition",
                        json={"to": "pending", "pending_reason": "awaiting_requester"})
    assert paused.status_code == 200, paused.get_json()
    assert staff.post(f"/incidents/{numbers[2]}/comments", json={"body": "On it."}).status_code == 201
    resolved = staff.post(f"/incidents/{numbers[3]}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Rebooted."})
    assert resolved.status_code == 200, resolved.get_json()
    clock.now += timedelta(days=3)  # the running clocks are breached by now
    return numbers


def _items(api, query):
    response = api.get(f"/incidents?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("who", ["agent", "admin", "employee"])
def test_list_items_equal_the_detail_of_each_incident(world, desk, incidents, who):
    api = world.api(getattr(desk, who))
    states = set()
    for sort in SORTS:
        page = _items(api, f"sort={sort}&limit=50")
        assert {i["number"] for i in page["items"]} == set(incidents)
        for item in page["items"]:
            detail = api.get(f"/incidents/{item['number']}").get_json()
            assert item == detail
            assert list(item) == list(detail)
            for clock in (item["sla"]["response"], item["sla"]["resolution"]):
                states.add("none" if clock is None else
                           "met" if clock["met_at"] else
                           "paused" if clock["paused"] else
                           "breached" if clock["breached"] else "running")
    assert {"none", "met", "paused", "breached"} <= states


@pytest.mark.parametrize("sort", list(SORTS))
def test_pages_and_cursors_equal_the_orm_list(app, world, desk, incidents, sort):
    api = world.api(desk.agent)
    filters = [("", {}), ("&open=true", {"open": True}),
               ("&status=new,pending", {"status": ["new", "pending"]})]
    for query, args in filters:
        cursor, seen = None, []
        while True:
            url = f"sort={sort}&limit=2{query}" + (f"&cursor={cursor}" if cursor else "")
            page = _items(api, url)
            with app.app_context():
                agent = db.session.get(type(desk.agent), desk.agent.id)
                rows, orm_cursor = service.list_incidents(agent, dict(args), sort, cursor, 2)
                assert [i["number"] for i in page["items"]] == [r.number for r in rows]
            assert page["next_cursor"] == orm_cursor
            seen += [i["number"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen))


def test_a_bad_cursor_or_sort_is_refused_as_before(world, desk, incidents):
    api = world.api(desk.agent)
    assert api.get("/incidents?cursor=nonsense").status_code == 422  # the service's check
    assert api.get("/incidents?sort=title").status_code == 400
