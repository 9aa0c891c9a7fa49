"""Keyset pagination, sorting and filters of GET /api/v1/incidents."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from sqlalchemy import bindparam, update

from servicedesk.extensions import db
from servicedesk.incidents.service import (
    create_incident,
    transition_incident,
    update_incident,
)
from servicedesk.tickets.admin import create_category
from servicedesk.tickets.models import Ticket
from servicedesk.types import UTCDateTime

SORTS = ("created_at", "-created_at", "updated_at", "-updated_at", "priority", "-priority")
LEVELS = ("high", "medium", "low")
BASE = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
N = 120
STEP_FIELDS = {"pending": {"pending_reason": "awaiting_vendor"},
               "resolved": {"resolution_code": "fixed", "resolution_notes": "ok"}}


def _cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _walk(api, limit, **query):
    """Follow next_cursor to the end; returns the pages."""
    pages, cursor = [], None
    while True:
        params = {**query, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = api.get("/incidents?" + urlencode(params))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        assert len(pages) < 1000
        if cursor is None:
            return pages
        assert len(body["items"]) == limit


def _sort_key(sort):
    def key(item):
        if sort.lstrip("-") == "priority":
            # The queue order: priority, then oldest first.
            created = datetime.fromisoformat(item["created_at"]).timestamp()
            return (item["priority"] if sort == "priority" else -item["priority"], created)
        value = datetime.fromisoformat(item[sort.lstrip("-")]).timestamp()
        return (-value if sort.startswith("-") else value,)
    return key


def _make(desk, count):
    """``count`` incidents by two requesters with many ties in every sort key."""
    numbers = []
    for i in range(count):
        requester = desk.employee if i % 2 else desk.other_employee
        numbers.append(create_incident(requester, {
            "title": f"incident {i}", "impact": LEVELS[i % 3], "urgency": LEVELS[(i // 3) % 3],
        }, channel="api").number)
    tickets = Ticket.__table__
    db.session.execute(
        update(tickets).where(tickets.c.number == bindparam("n")).values(
            created_at=bindparam("c", type_=UTCDateTime),
            updated_at=bindparam("u", type_=UTCDateTime)),
        [{"n": number,
          # Scrambled, with three incidents on each instant.
          "c": BASE + timedelta(minutes=(i * 37) % 40),
          "u": BASE + timedelta(hours=(i * 13) % 17, microseconds=i % 2)}
         for i, number in enumerate(numbers)],
    )
    db.session.commit()
    return numbers


@pytest.fixture
def many(world, desk):
    return _make(desk, N)


@pytest.fixture
def few(world, desk):
    return _make(desk, 9)


def test_every_sort_pages_through_every_incident_exactly_once_in_order(world, desk, many):
    api = world.api(desk.admin)
    default = api.get("/incidents").get_json()
    assert len(default["items"]) == 50 and default["next_cursor"]
    # Compare which incidents, in which order: items also carry values that tick with
    # the clock (open_seconds, SLA elapsed_percent) and may differ between two requests.
    explicit = api.get("/incidents?sort=-created_at&limit=50").get_json()["items"]
    assert [i["number"] for i in default["items"]] == [i["number"] for i in explicit]
    for sort in SORTS:
        # Paging never changes the order: the same as one page holding everything.
        whole = api.get(f"/incidents?sort={sort}&limit=200").get_json()
        assert whole["next_cursor"] is None
        expected = [i["number"] for i in whole["items"]]
        assert sorted(expected) == sorted(many), sort
        keys = [_sort_key(sort)(i) for i in whole["items"]]
        assert keys == sorted(keys), sort
        # Ties (three incidents per instant) are broken the same way every time.
        ties = {}
        for item in whole["items"]:
            ties.setdefault(_sort_key(sort)(item), []).append(item["number"])
        for numbers in ties.values():
            assert numbers in (sorted(numbers), sorted(numbers, reverse=True)), (sort, numbers)
        for limit in (7, 50):
            pages = _walk(api, limit, sort=sort)
            numbers = [i["number"] for page in pages for i in page]
            assert len(pages) == -(-N // limit), (sort, limit)
            assert numbers == expected, (sort, limit)


def test_a_requester_pages_through_only_their_own_incidents(world, desk, many):
    pages = _walk(world.api(desk.employee), 11, sort="priority")
    items = [i for page in pages for i in page]
    assert len(items) == N // 2
    assert {i["requester"] for i in items} == {"emma"}
    assert len({i["number"] for i in items}) == N // 2


def test_a_page_limit_is_between_1_and_200(world, desk, few):
    api = world.api(desk.admin)
    assert len(api.get("/incidents?limit=1").get_json()["items"]) == 1
    assert len(api.get("/incidents?limit=200").get_json()["items"]) == len(few)
    for bad in ("0", "201", "-5", "ten", "1.5"):
        response = api.get("/incidents?limit=" + bad)
        assert response.status_code == 400
        assert list(response.get_json()["error"]["fields"]) == ["limit"]


def test_a_cursor_survives_new_incidents_arriving_meanwhile(world, desk, few):
    api = world.api(desk.admin)
    first = api.get("/incidents?sort=created_at&limit=4").get_json()
    # Newer than everything so far: lands at the end of an oldest-first walk.
    late = create_incident(desk.employee, {"title": "late"}, channel="api").number
    rest = [i for page in _walk(api, 3, sort="created_at", cursor=first["next_cursor"])
            for i in page]
    seen = [i["number"] for i in first["items"] + rest]
    assert len(seen) == len(set(seen)) == len(few) + 1
    assert seen[-1] == late


# --- tampered cursors --------------------------------------------------------------------------

TAMPERED = [
    ("-created_at", "not a cursor!"),
    ("-created_at", "é"),
    ("-created_at", "AAAA"),
    ("-created_at", _cursor({"created_at": "2026-01-01T00:00:00+00:00", "id": 1})),
    ("-created_at", _cursor([1])),
    ("-created_at", _cursor(["2026-01-01T00:00:00+00:00", 1, 2])),
    ("-created_at", _cursor(["yesterday", 1])),
    ("-created_at", _cursor(["2026-01-01T00:00:00", 1])),  # naive
    ("-created_at", _cursor(["2026-01-01T00:00:00+00:00", 1.5])),
    ("-created_at", _cursor(["2026-01-01T00:00:00+00:00", True])),
    ("-created_at", _cursor(["2026-01-01T00:00:00+00:00", "1"])),
    ("-created_at", _cursor(["2026-01-01T00:00:00+00:00", -1])),
    ("-created_at", _cursor([None, None])),
    ("-created_at", _cursor(["0001-01-01T00:00:00+01:00", 1])),  # before year 1 in UTC
    ("-created_at", _cursor(["9999-12-31T23:59:59-14:00", 1])),  # after 9999 in UTC
    ("updated_at", _cursor([{"$gt": 0}, 1])),
    ("priority", _cursor([1, "2026-01-01T00:00:00+00:00"])),
    ("priority", _cursor(["1", "2026-01-01T00:00:00+00:00", 1])),
    ("priority", _cursor([10**30, "2026-01-01T00:00:00+00:00", 1])),
    ("priority", _cursor([1, "2026-01-01T00:00:00+00:00", 2**63])),
    ("priority", _cursor([1, "2026-01-01T00:00:00+00:00", -2**63 - 1])),
    ("-priority", _cursor(["1 OR 1=1", "2026-01-01T00:00:00+00:00", 1])),
]


def test_a_tampered_cursor_is_a_4xx_naming_cursor(world, desk, few):
    api = world.api(desk.admin)
    accepted, errors = [], []
    for sort, cursor in TAMPERED:
        response = api.get("/incidents?" + urlencode({"sort": sort, "cursor": cursor}))
        if response.status_code < 400 or response.status_code >= 500:
            accepted.append((sort, cursor, response.status_code))
            continue
        error = response.get_json()["error"]
        if response.status_code != 422 or list(error["fields"]) != ["cursor"]:
            errors.append((sort, cursor, response.status_code, error))
    assert accepted == []
    assert errors == []


def test_a_cursor_longer_than_500_characters_is_a_400_naming_cursor(world, desk):
    response = world.api(desk.admin).get("/incidents?cursor=" + "A" * 501)
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["cursor"]


def test_a_cursor_of_one_sort_cannot_be_replayed_on_a_sort_of_another_shape(world, desk, few):
    api = world.api(desk.admin)
    cursor = api.get("/incidents?sort=priority&limit=5").get_json()["next_cursor"]
    response = api.get("/incidents?" + urlencode({"sort": "created_at", "cursor": cursor}))
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["cursor"]


# --- filters -------------------------------------------------------------------------------------


@pytest.fixture
def varied(world, desk):
    """A dozen incidents differing in every filterable way; returns the admin's full view."""
    hardware = create_category(None, "Hardware")
    printer = create_category(None, "Printer", hardware.id)
    network = create_category(None, "Network")
    specs = [
        # requester, impact, urgency, category, subcategory, group, assignee, moves
        (desk.employee, "high", "high", hardware, printer, None, "agent1", ["in_progress"]),
        (desk.employee, "low", "low", hardware, None, None, None, []),
        (desk.employee, "medium", "medium", network, None, "Network Team", "netagent", []),
        (desk.employee, "high", "medium", None, None, None, "agent2", ["in_progress", "pending"]),
        (desk.other_employee, "high", "high", network, None, None, None, []),
        (desk.other_employee, "medium", "low", hardware, printer, None, "agent1",
         ["in_progress", "resolved"]),
        (desk.other_employee, "low", "high", None, None, "Network Team", None, []),
        (desk.other_employee, "low", "medium", None, None, None, None, ["cancelled"]),
        (desk.agent, "medium", "medium", hardware, printer, None, "agent1", []),
        (desk.employee, "high", "low", None, None, "Engineering", None, []),
    ]
    for i, (requester, impact, urgency, category, sub, group, assignee, moves) in enumerate(specs):
        data = {"title": f"v{i}", "impact": impact, "urgency": urgency}
        if category is not None:
            data["category_id"] = category.id
        if sub is not None:
            data["subcategory_id"] = sub.id
        incident = create_incident(requester, data, channel="api")
        routing = {"group": group} if group else {}
        if assignee:
            routing["assignee"] = assignee
        if routing:  # staff route it: to a group, to a person (then it is "assigned")
            update_incident(desk.admin, incident.number, {**routing, "version": 1})
        for step in moves:
            transition_incident(desk.admin, incident.number,
                                {"to": step, **STEP_FIELDS.get(step, {})})
        db.session.execute(update(Ticket).where(Ticket.number == incident.number).values(
            created_at=BASE + timedelta(days=i)))
    db.session.commit()
    items = world.api(desk.admin).get("/incidents?limit=200").get_json()["items"]
    assert len(items) == len(specs)
    return {"items": items, "hardware": hardware.id, "printer": printer.id,
            "network": network.id}


def _numbers(api, query) -> set:
    response = api.get("/incidents?" + query)
    assert response.status_code == 200, (query, response.get_json())
    assert response.get_json()["next_cursor"] is None
    return {i["number"] for i in response.get_json()["items"]}


def _created(item):
    return datetime.fromisoformat(item["created_at"])


def test_each_filter_narrows_to_exactly_the_matching_incidents(world, desk, varied):
    items = varied["items"]
    day = lambda n: (BASE + timedelta(days=n)).isoformat()  # noqa: E731
    cases = {
        "status=new": lambda i: i["status"] == "new",
        "status=assigned,pending": lambda i: i["status"] in ("assigned", "pending"),
        "status=resolved": lambda i: i["status"] == "resolved",
        "priority=1": lambda i: i["priority"] == 1,
        "priority=2,3": lambda i: i["priority"] in (2, 3),
        "open=true": lambda i: i["is_open"],
        "open=false": lambda i: not i["is_open"],
        "group=Network+Team": lambda i: i["group"] == "Network Team",
        "group=Service+Desk": lambda i: i["group"] == "Service Desk",
        "assignee=none": lambda i: i["assignee"] is None,
        "assignee=agent1": lambda i: i["assignee"] == "agent1",
        "assignee=netagent": lambda i: i["assignee"] == "netagent",
        "requester=emma": lambda i: i["requester"] == "emma",
        "requester=omid": lambda i: i["requester"] == "omid",
        f"category_id={varied['hardware']}": lambda i: i["category"] == "Hardware",
        f"category_id={varied['printer']}": lambda i: i["subcategory"] == "Printer",
        f"category_id={varied['network']}": lambda i: i["category"] == "Network",
        "created_after=" + urlencode({"": day(4)})[1:]: lambda i: _created(i) >= BASE
        + timedelta(days=4),
        "created_before=" + urlencode({"": day(4)})[1:]: lambda i: _created(i) < BASE
        + timedelta(days=4),
        "created_after=" + urlencode({"": day(2)})[1:] + "&created_before="
        + urlencode({"": day(6)})[1:]: lambda i: BASE + timedelta(days=2) <= _created(i)
        < BASE + timedelta(days=6),
        "status=new&group=Service+Desk&requester=omid": lambda i: (
            i["status"] == "new" and i["group"] == "Service Desk" and i["requester"] == "omid"),
        "priority=1&assignee=none": lambda i: i["priority"] == 1 and i["assignee"] is None,
    }
    api = world.api(desk.admin)
    for query, predicate in cases.items():
        expected = {i["number"] for i in items if predicate(i)}
        assert expected, f"the data set should give {query} something to find"
        assert expected != {i["number"] for i in items} or query == "open=true", query
        assert _numbers(api, query) == expected, query


def test_assignee_me_means_the_caller(world, desk, varied):
    agent_view = world.api(desk.agent).get("/incidents?limit=200").get_json()["items"]
    expected = {i["number"] for i in agent_view if i["assignee"] == "agent1"}
    assert expected
    assert _numbers(world.api(desk.agent), "assignee=me") == expected
    assert _numbers(world.api(desk.employee), "assignee=me") == set()


def test_filters_never_widen_what_the_caller_may_see(world, desk, varied):
    employee = world.api(desk.employee)
    mine = _numbers(employee, "limit=200")
    for query in ("status=resolved", f"category_id={varied['printer']}", "assignee=none",
                  "assignee=me", "requester=emma"):
        assert _numbers(employee, query) <= mine, query
    # Filters naming other people or groups are refused outright for a requester.
    for query in ("requester=omid", "group=Network+Team", "assignee=agent1"):
        response = employee.get("/incidents?" + query)
        assert response.status_code == 403, query
        assert response.get_json()["error"]["code"] == "forbidden_fields"


def test_a_filter_combined_with_paging_still_returns_each_match_once(world, desk, varied):
    expected = {i["number"] for i in varied["items"] if i["is_open"]}
    pages = _walk(world.api(desk.admin), 2, open="true", sort="priority")
    numbers = [i["number"] for page in pages for i in page]
    assert sorted(numbers) == sorted(expected)


@pytest.mark.parametrize("query, field", [
    ("group=No+Such+Group", "group"),
    ("assignee=nobody", "assignee"),
    ("requester=nobody", "requester"),
    ("created_after=0001-01-01T00:00:00%2B01:00", "created_after"),
    ("created_before=9999-12-31T23:59:59-14:00", "created_before"),
    ("created_after=2026-01-01T00:00:00", "created_after"),
    ("created_before=soon", "created_before"),
    ("category_id=-3", "category_id"),
    ("priority=1,9", "priority"),
    ("status=new,", "status"),
])
def test_a_filter_value_that_names_nothing_is_a_4xx_naming_the_filter(world, desk, query, field):
    world.incident(desk.employee)
    response = world.api(desk.admin).get("/incidents?" + query)
    assert 400 <= response.status_code < 500, response.get_json()
    assert field in response.get_json()["error"]["fields"]


def test_a_category_filter_for_an_unknown_category_finds_nothing(world, desk, varied):
    assert _numbers(world.api(desk.admin), "category_id=99999") == set()
