"""Behavioural performance guards: SQL statements per request stay constant (no N+1).

Counted with a ``before_cursor_execute`` listener on the engine. Each counted request
runs in an application context of its own, so its session starts empty as in
production (the test's own session would otherwise answer lookups from objects the
test created and hide an N+1). Nothing here measures time; bench/api_load.py does.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from servicedesk.extensions import db
from servicedesk.tickets.admin import create_category

QUEUE = "/incidents?open=true&sort=priority&limit=50"


@contextmanager
def statements():
    """The SQL statements sent while the block runs."""
    sent: list[str] = []

    def listener(_conn, _cursor, statement, _parameters, _context, _many):
        sent.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def counted(app, call):
    """(response, statements) of ``call()`` run in a fresh app context (empty session)."""
    with app.app_context():
        with statements() as sent:
            response = call()
    return response, list(sent)


@pytest.fixture
def busy_desk(world, desk):
    """Four groups, an agent in all of them, an assignee per group, three categories."""
    groups = [desk.l1] + [world.group(f"Queue {n}", 1) for n in range(3)]
    watcher = world.user("agent", "watcher", groups=groups)
    assignees = [world.user("agent", f"assignee{n}", groups=[g]) for n, g in enumerate(groups)]
    categories = []
    for n in range(3):
        parent = create_category(None, f"Category {n}")
        categories.append((parent.id, create_category(None, f"Sub {n}", parent.id).id))
    staff = world.api(desk.admin)

    def raise_incidents(count: int, start: int = 0):
        """``count`` incidents, each with its own requester, spread over groups etc."""
        for n in range(start, start + count):
            requester = world.user("requester", f"employee{n}", display_name=f"Employee {n}")
            category, subcategory = categories[n % len(categories)]
            group = groups[n % len(groups)]
            body = {"title": f"Incident {n}", "requester": requester.username,
                    "impact": ("high", "medium", "low")[n % 3],
                    "urgency": ("low", "medium", "high")[n % 3],
                    "category_id": category, "subcategory_id": subcategory,
                    "group": group.name}
            if (n // len(groups)) % 2:  # half of them assigned, in every group
                body["assignee"] = assignees[n % len(groups)].username
            response = staff.post("/incidents", json=body)
            assert response.status_code == 201, response.get_json()

    return world.api(watcher), raise_incidents


def test_queue_page_statements_do_not_grow_with_the_incidents_on_it(app, busy_desk):
    queue, raise_incidents = busy_desk
    raise_incidents(5)
    few, few_sql = counted(app, lambda: queue.get(QUEUE))
    assert few.status_code == 200
    assert len(few.get_json()["items"]) == 5

    raise_incidents(35, start=5)
    many, many_sql = counted(app, lambda: queue.get(QUEUE))
    items = many.get_json()["items"]
    assert len(items) == 40
    # 40 requesters, 4 assignees, 4 groups and 6 (sub)categories on the page ...
    assert len({i["requester"] for i in items}) == 40
    assert len({i["assignee"] for i in items} - {None}) == 4
    assert len({i["group"] for i in items}) == 4
    assert len({i["subcategory"] for i in items}) == 3
    # ... and still the statements of a page of 5: token, page (plus BEGIN on SQLite).
    assert len(many_sql) == len(few_sql), many_sql
    assert len(many_sql) <= 3, many_sql


def test_create_statements_do_not_grow_with_the_incidents_that_exist(app, world, desk):
    parent = create_category(None, "Hardware")
    child = create_category(None, "Laptop", parent.id)
    employee = world.api(desk.employee)
    body = {"title": "Laptop will not boot", "impact": "high", "urgency": "medium",
            "category_id": parent.id, "subcategory_id": child.id}
    # The first request of a process also loads the SLA reference data (refdata).
    assert employee.post("/incidents", json={**body, "title": "Warm-up"}).status_code == 201

    first, first_sql = counted(app, lambda: employee.post("/incidents", json=body))
    assert first.status_code == 201, first.get_json()
    for n in range(30):
        assert employee.post("/incidents", json={**body, "title": f"Again {n}"}).status_code == 201
    later, later_sql = counted(app, lambda: employee.post("/incidents", json=body))
    assert later.status_code == 201
    assert later.get_json()["number"] == "INC000033"
    assert len(later_sql) == len(first_sql), later_sql
    # Nothing is read back after the writes: hooks and the response use what was written.
    assert later_sql[-1].lstrip().upper().startswith("INSERT"), later_sql


def test_staff_create_with_group_and_assignee_is_constant_too(app, world, desk):
    agent = world.api(desk.agent)
    body = {"title": "Switch down", "requester": desk.employee.username,
            "group": desk.l1.name, "assignee": desk.agent_b.username}
    agent.post("/incidents", json={**body, "title": "Warm-up"})  # loads refdata
    first, first_sql = counted(app, lambda: agent.post("/incidents", json=body))
    assert first.status_code == 201, first.get_json()
    for n in range(20):
        agent.post("/incidents", json={**body, "title": f"Switch {n}"})
    later, later_sql = counted(app, lambda: agent.post("/incidents", json=body))
    assert later.status_code == 201
    assert later.get_json()["assignee"] == desk.agent_b.username
    assert len(later_sql) == len(first_sql), later_sql


def test_queue_query_walks_the_open_queue_index_on_sqlite(app, busy_desk):
    """The queue is read in index order and stops after a page (no sort of all rows)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL chooses by statistics; bench/api_load.py prints its plan")
    queue, raise_incidents = busy_desk
    raise_incidents(8)
    captured = []

    def listener(_conn, _cursor, statement, parameters, _context, _many):
        if "FROM tickets" in statement:
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with app.app_context():
            assert queue.get(QUEUE).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    statement, parameters = captured[0]
    with db.engine.connect() as conn:
        plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                        parameters)]
    assert any("ix_tickets_open_queue" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan
