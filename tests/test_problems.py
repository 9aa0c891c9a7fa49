"""Problem management and the known-error database through the REST API."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from servicedesk.extensions import db
from servicedesk.notify.models import Notification
from servicedesk.problems.models import ProblemIncident
from servicedesk.problems.service import derived_impact
from servicedesk.problems.workflow import PROBLEM_WORKFLOW
from servicedesk.tickets.admin import create_category

from cmdb_support import estate  # noqa: F401  (fixture)


def _problem(world, user, **fields) -> dict:
    response = world.api(user).post("/problems", json={"title": "VPN drops", **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _move(world, user, number, **body):
    return world.api(user).post(f"/problems/{number}/transition", json=body)


def _links() -> int:
    return db.session.scalar(select(func.count()).select_from(ProblemIncident))


# --- raising, linking, impact ----------------------------------------------------------


def test_impact_grows_with_linked_incidents_and_links_are_audited_on_both_sides(world, desk):
    incs = [world.incident(desk.employee, title=f"VPN drop {i}")["number"] for i in range(3)]
    body = _problem(world, desk.agent, impact="low", urgency="medium", incidents=incs[:1])
    number = body["number"]
    assert (number, body["status"], body["raised_by"]) == ("PRB000001", "new", "agent1")
    assert (body["incident_count"], body["base_impact"], body["impact"], body["priority"]) \
        == (1, "low", "medium", 3)

    staff = world.api(desk.agent)
    linked = staff.post(f"/problems/{number}/incidents", json={"incidents": incs[1:]})
    assert linked.status_code == 200, linked.get_json()
    body = linked.get_json()
    assert (body["incident_count"], body["impact"], body["priority"]) == (3, "high", 2)
    listed = staff.get(f"/problems/{number}/incidents").get_json()
    assert [i["number"] for i in listed["items"]] == incs and listed["hidden"] == 0

    unlinked = staff.request("DELETE", f"/problems/{number}/incidents/{incs[2]}")
    assert unlinked.status_code == 200
    assert (unlinked.get_json()["incident_count"], unlinked.get_json()["impact"]) == (2, "medium")

    history = staff.get(f"/problems/{number}/history").get_json()
    assert [(e["action"], e["old_value"], e["new_value"]) for e in history
            if e["field"] == "incidents"] == [
        ("incident_linked", None, incs[0]), ("incident_linked", None, incs[1]),
        ("incident_linked", None, incs[2]), ("incident_unlinked", incs[2], None)]
    on_incident = staff.get(f"/incidents/{incs[2]}/history").get_json()
    assert [(e["action"], e["old_value"], e["new_value"]) for e in on_incident
            if e["field"] == "problem"] == [("problem_linked", None, number),
                                            ("problem_unlinked", number, None)]
    # The requester never learns of the problem through their incident.
    mine = world.api(desk.employee).get(f"/incidents/{incs[2]}/history").get_json()
    assert not [e for e in mine if e["field"] == "problem"]


def test_impact_rule_is_the_higher_of_the_set_impact_and_the_link_count():
    assert [derived_impact("low", n) for n in (0, 1, 2, 3, 10)] == \
        ["low", "medium", "medium", "high", "high"]
    assert derived_impact("high", 0) == "high"


def test_a_requester_finds_no_problem_url_at_all(world, desk):
    inc = world.incident(desk.employee)["number"]
    number = _problem(world, desk.agent, incidents=[inc])["number"]
    requester = world.api(desk.employee)
    for method, path, body in [
        ("GET", "/problems", None), ("POST", "/problems", {"title": "x"}),
        ("GET", f"/problems/{number}", None),
        ("PATCH", f"/problems/{number}", {"title": "x", "version": 1}),
        ("POST", f"/problems/{number}/transition", {"to": "investigating"}),
        ("GET", f"/problems/{number}/incidents", None),
        ("POST", f"/problems/{number}/incidents", {"incidents": [inc]}),
        ("DELETE", f"/problems/{number}/incidents/{inc}", None),
        ("POST", f"/problems/{number}/publish-workaround", {}),
        ("GET", f"/problems/{number}/comments", None),
        ("GET", f"/problems/{number}/history", None),
        ("GET", "/known-errors?q=vpn", None),
        ("GET", f"/incidents/{inc}/known-errors", None),
    ]:
        response = requester.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.get_json())
    assert world.api(None).get("/problems").status_code == 401
    assert _links() == 1


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_managers_and_admins_work_problems_like_agents(world, desk, role):
    user = desk.manager if role == "manager" else desk.admin
    number = _problem(world, user, title="Disk full on mail server")["number"]
    assert world.api(desk.agent).get(f"/problems/{number}").status_code == 200
    assert _move(world, user, number, to="investigating").get_json()["allowed_transitions"] == [
        "known_error", "resolved", "cancelled"]


def test_linking_refuses_unknown_unseen_and_duplicate_incidents_and_changes_nothing(world, desk):
    inc = world.incident(desk.employee)["number"]
    number = _problem(world, desk.agent, incidents=[inc])["number"]
    staff = world.api(desk.agent)
    unknown = staff.post(f"/problems/{number}/incidents", json={"incidents": ["INC999999"]})
    assert unknown.status_code == 422 and "incidents" in unknown.get_json()["error"]["fields"]
    # An incident of a queue the agent does not see does not exist for them.
    hidden = world.incident(desk.other_employee)["number"]
    world.api(desk.admin).patch(f"/incidents/{hidden}", json={"group": "Engineering",
                                                                "version": 1})
    unseen = staff.post(f"/problems/{number}/incidents", json={"incidents": [hidden]})
    assert unseen.status_code == 422 and "incidents" in unseen.get_json()["error"]["fields"]
    twice = staff.post(f"/problems/{number}/incidents", json={"incidents": [inc]})
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "already_linked"
    empty = staff.post(f"/problems/{number}/incidents", json={"incidents": []})
    assert empty.status_code == 422 and "incidents" in empty.get_json()["error"]["fields"]
    not_linked = staff.request("DELETE", f"/problems/{number}/incidents/{hidden}")
    assert not_linked.status_code == 422
    assert _links() == 1
    assert staff.get(f"/problems/{number}").get_json()["version"] == 1
    # The admin sees every queue: the hidden incident, and the link's "others" count.
    world.api(desk.admin).post(f"/problems/{number}/incidents", json={"incidents": [hidden]})
    listed = staff.get(f"/problems/{number}/incidents").get_json()
    assert ([i["number"] for i in listed["items"]], listed["hidden"]) == ([inc], 1)


# --- editing ---------------------------------------------------------------------------


def test_editing_needs_the_current_version_and_refuses_bad_or_forbidden_fields(world, desk):
    body = _problem(world, desk.agent)
    number, staff = body["number"], world.api(desk.agent)
    ok = staff.patch(f"/problems/{number}", json={
        "root_cause": "MTU mismatch", "workaround": "Use the web VPN", "impact": "high",
        "assignee": "agent2", "version": 1})
    assert ok.status_code == 200, ok.get_json()
    body = ok.get_json()
    assert (body["root_cause"], body["workaround"], body["workaround_version"],
            body["impact"], body["assignee"], body["group"], body["version"]) == (
        "MTU mismatch", "Use the web VPN", 1, "high", "agent2", None, 2)
    stale = staff.patch(f"/problems/{number}", json={"title": "other", "version": 1})
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"
    bad = staff.patch(f"/problems/{number}", json={"impact": "huge", "version": 2})
    assert bad.status_code == 422 and "impact" in bad.get_json()["error"]["fields"]
    forbidden = staff.patch(f"/problems/{number}", json={"priority": 1, "version": 2})
    assert forbidden.status_code == 403 and "priority" in forbidden.get_json()["error"]["fields"]
    outsider = staff.patch(f"/problems/{number}", json={"group": "Service Desk",
                                                        "assignee": "netagent", "version": 2})
    assert outsider.status_code == 422 and "assignee" in outsider.get_json()["error"]["fields"]
    after = staff.get(f"/problems/{number}").get_json()
    assert (after["title"], after["impact"], after["version"]) == ("VPN drops", "high", 2)
    missing = world.api(desk.agent).post("/problems", json={"description": "no title"})
    assert missing.status_code == 422 and "title" in missing.get_json()["error"]["fields"]


# --- the workflow ----------------------------------------------------------------------


EDGES = {
    ("new", "investigating"), ("new", "known_error"), ("new", "cancelled"),
    ("investigating", "known_error"), ("investigating", "resolved"),
    ("investigating", "cancelled"), ("known_error", "investigating"),
    ("known_error", "resolved"), ("known_error", "cancelled"), ("resolved", "closed"),
    ("resolved", "investigating"),
}


def test_the_workflow_table_is_the_documented_one_and_staff_only():
    edges = {(t.source, t.target) for t in PROBLEM_WORKFLOW.transitions}
    assert edges == EDGES
    assert all(t.roles == {"agent", "manager", "admin"} for t in PROBLEM_WORKFLOW.transitions)
    assert PROBLEM_WORKFLOW.allowed("new", "requester") == []


def test_walking_the_workflow_enforces_each_rule(world, desk):
    number = _problem(world, desk.agent)["number"]
    a = desk.agent
    # Not an edge: 409 naming the allowed ones.
    skip = _move(world, a, number, to="resolved", resolution_notes="x")
    assert skip.status_code == 409
    assert "investigating" in skip.get_json()["error"]["message"]
    # A known error needs a root cause and a workaround.
    bare = _move(world, a, number, to="known_error")
    assert bare.status_code == 422
    assert set(bare.get_json()["error"]["fields"]) == {"root_cause", "workaround"}
    assert _move(world, a, number, to="investigating").get_json()["status"] == "investigating"
    half = _move(world, a, number, to="known_error", root_cause="MTU")
    assert half.status_code == 422 and set(half.get_json()["error"]["fields"]) == {"workaround"}
    known = _move(world, a, number, to="known_error", root_cause="MTU",
                  workaround="Use the web VPN")
    assert known.status_code == 200
    assert known.get_json()["known_error_at"] and known.get_json()["workaround_version"] == 1
    back = _move(world, a, number, to="investigating").get_json()
    assert (back["status"], back["known_error_at"]) == ("investigating", None)
    # Saved root cause and workaround count: no need to send them again.
    assert _move(world, a, number, to="known_error").status_code == 200
    version = world.api(a).get(f"/problems/{number}").get_json()["version"]
    emptied = world.api(a).patch(f"/problems/{number}", json={"workaround": None,
                                                              "version": version})
    assert emptied.status_code == 422 and set(emptied.get_json()["error"]["fields"]) == {
        "workaround"}
    stale = _move(world, a, number, to="resolved", resolution_notes="x", version=1)
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"
    no_notes = _move(world, a, number, to="resolved")
    assert no_notes.status_code == 422 and "resolution_notes" in no_notes.get_json()["error"]["fields"]
    resolved = _move(world, a, number, to="resolved", resolution_notes="CHG000001 fixed the MTU")
    assert (resolved.get_json()["status"], resolved.get_json()["is_open"]) == ("resolved", False)
    reopened = _move(world, a, number, to="investigating").get_json()
    assert (reopened["reopen_count"], reopened["resolved_at"]) == (1, None)
    _move(world, a, number, to="resolved", resolution_notes="Really fixed")
    closed = _move(world, a, number, to="closed").get_json()
    assert (closed["status"], closed["allowed_transitions"]) == ("closed", [])
    after = _move(world, a, number, to="investigating")
    assert after.status_code == 409
    assert world.api(a).post(f"/problems/{number}/comments", json={"body": "hi"}).status_code == 409
    assert world.api(a).patch(f"/problems/{number}",
                              json={"title": "x", "version": closed["version"]}).status_code == 409
    bad_target = _move(world, a, number, to="nowhere")
    assert bad_target.status_code == 422 and "to" in bad_target.get_json()["error"]["fields"]


@pytest.mark.parametrize("path", [[], ["investigating"], ["known_error"]])
def test_a_problem_can_be_cancelled_until_it_is_resolved(world, desk, path):
    number = _problem(world, desk.agent, root_cause="r", workaround="w")["number"]
    for step in path:
        assert _move(world, desk.agent, number, to=step).status_code == 200
    cancelled = _move(world, desk.agent, number, to="cancelled").get_json()
    assert (cancelled["status"], cancelled["closed_at"] is not None) == ("cancelled", True)


# --- known errors ----------------------------------------------------------------------


def test_publishing_the_workaround_replies_once_per_version_to_open_incidents(world, desk):
    open_inc = world.incident(desk.employee, title="VPN drops again")["number"]
    done_inc = world.incident(desk.other_employee)["number"]
    world.api(desk.agent).post(f"/incidents/{done_inc}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "rebooted"})
    number = _problem(world, desk.agent, incidents=[open_inc, done_inc])["number"]
    staff = world.api(desk.agent)
    nothing = staff.post(f"/problems/{number}/publish-workaround")
    assert nothing.status_code == 409 and "workaround" in nothing.get_json()["error"]["fields"]
    _move(world, desk.agent, number, to="known_error", root_cause="MTU", workaround="Use web VPN")

    first = staff.post(f"/problems/{number}/publish-workaround")
    assert first.status_code == 200 and first.get_json() == {"published_to": [open_inc]}
    assert staff.post(f"/problems/{number}/publish-workaround").get_json() == {"published_to": []}
    assert [i["published_version"] for i in
            staff.get(f"/problems/{number}/incidents").get_json()["items"]] == [1, 0]
    # The requester sees it as a public reply on their incident.
    replies = world.api(desk.employee).get(f"/incidents/{open_inc}/comments").get_json()
    assert len(replies) == 1 and "Use web VPN" in replies[0]["body"] and number in replies[0]["body"]
    assert replies[0]["author"] == "agent1"
    assert world.api(desk.other_employee).get(f"/incidents/{done_inc}/comments").get_json() == []
    # A new workaround is a new version: published again.
    version = staff.get(f"/problems/{number}").get_json()["version"]
    staff.patch(f"/problems/{number}", json={"workaround": "Use 4G", "version": version})
    assert staff.post(f"/problems/{number}/publish-workaround").get_json() == {
        "published_to": [open_inc]}
    assert len(world.api(desk.employee).get(f"/incidents/{open_inc}/comments").get_json()) == 2


@pytest.mark.parametrize("resolve", [False, True])
def test_resolving_a_problem_tells_and_optionally_resolves_linked_open_incidents(
        world, desk, resolve):
    incs = [world.incident(desk.employee, title=f"VPN {i}")["number"] for i in range(2)]
    for inc in incs:
        world.api(desk.agent).post(f"/incidents/{inc}/transition",
                                   json={"to": "assigned", "assignee": "agent2"})
    number = _problem(world, desk.agent, incidents=incs)["number"]
    _move(world, desk.agent, number, to="investigating")
    body = {"to": "resolved", "resolution_notes": "MTU fixed by CHG000007"}
    if resolve:
        body.update(resolve_incidents=True, incident_resolution_code="workaround")
    assert _move(world, desk.agent, number, **body).status_code == 200
    for inc in incs:
        incident = world.api(desk.agent).get(f"/incidents/{inc}").get_json()
        if resolve:
            assert (incident["status"], incident["resolution_code"]) == ("resolved", "workaround")
            assert number in incident["resolution_notes"]
        else:
            assert incident["status"] == "assigned"
        notes = world.api(desk.agent).get(f"/incidents/{inc}/comments").get_json()
        assert [(c["public"], number in c["body"]) for c in notes] == [(False, True)]
    sent = db.session.scalars(select(Notification).where(
        Notification.event == "problem.resolved")).all()
    assert sorted(n.recipient_id for n in sent) == [desk.agent_b.id] * 2
    assert number in sent[0].body_text


def test_resolving_refuses_an_unknown_incident_resolution_code(world, desk):
    inc = world.incident(desk.employee)["number"]
    number = _problem(world, desk.agent, incidents=[inc])["number"]
    _move(world, desk.agent, number, to="investigating")
    bad = _move(world, desk.agent, number, to="resolved", resolution_notes="x",
                resolve_incidents=True, incident_resolution_code="duplicate")
    assert bad.status_code == 422 and "incident_resolution_code" in bad.get_json()["error"]["fields"]
    assert world.api(desk.agent).get(f"/incidents/{inc}").get_json()["status"] == "new"


def test_known_errors_are_searchable_and_suggested_for_matching_incidents(
        world, desk, estate):  # noqa: F811
    network = create_category(None, "Network", None)
    hardware = create_category(None, "Hardware", None)
    gateway = estate.ci("vpn-gw-1")
    staff = world.api(desk.agent)
    by_ci = _problem(world, desk.agent, title="Tunnel resets", affected_cis=[gateway.id],
                     root_cause="Firmware bug", workaround="Reconnect with the web client")
    by_category = _problem(world, desk.agent, title="Wi-Fi roaming", category_id=network.id,
                           root_cause="AP config", workaround="Stay near one access point")
    by_text = _problem(world, desk.agent, title="Laptop docking VPN failure",
                       category_id=hardware.id, root_cause="Driver",
                       workaround="Undock before connecting")
    still_open = _problem(world, desk.agent, title="VPN tunnel mystery", workaround="none yet",
                          affected_cis=[gateway.id])
    for p in (by_ci, by_category, by_text):
        _move(world, desk.agent, p["number"], to="known_error")

    found = staff.get("/known-errors?q=reconnect").get_json()
    assert [k["number"] for k in found] == [by_ci["number"]]
    assert [k["number"] for k in staff.get("/known-errors?q=VPN").get_json()] == [by_text["number"]]
    assert [k["number"] for k in staff.get(f"/known-errors?category_id={network.id}").get_json()] \
        == [by_category["number"]]
    assert [k["number"] for k in staff.get(f"/known-errors?ci_id={gateway.id}").get_json()] \
        == [by_ci["number"]]
    assert staff.get("/known-errors?q=100%25").get_json() == []
    assert staff.get("/known-errors?sort=x").status_code == 400
    assert still_open["number"] not in {k["number"] for k in staff.get("/known-errors").get_json()}

    inc = world.incident(desk.employee, title="VPN keeps dropping", category_id=network.id)
    world.api(desk.agent).patch(f"/incidents/{inc['number']}", json={
        "affected_cis": [gateway.id], "version": 1})
    suggested = staff.get(f"/incidents/{inc['number']}/known-errors").get_json()
    assert [k["number"] for k in suggested] == [
        by_ci["number"], by_category["number"], by_text["number"]]
    # Once linked, a known error is no longer a suggestion for that incident.
    staff.post(f"/problems/{by_ci['number']}/incidents", json={"incidents": [inc["number"]]})
    suggested = staff.get(f"/incidents/{inc['number']}/known-errors").get_json()
    assert [k["number"] for k in suggested] == [by_category["number"], by_text["number"]]


def test_the_problem_list_filters_sorts_and_refuses_unknown_keys(world, desk):
    first = _problem(world, desk.agent, title="Printer blank pages")["number"]
    second = _problem(world, desk.agent, title="VPN drops", impact="high")["number"]
    _move(world, desk.agent, first, to="cancelled")
    staff = world.api(desk.agent)
    numbers = lambda r: [p["number"] for p in r.get_json()["items"]]  # noqa: E731
    assert numbers(staff.get("/problems")) == [second, first]
    assert numbers(staff.get("/problems?open=true")) == [second]
    assert numbers(staff.get("/problems?status=cancelled")) == [first]
    assert numbers(staff.get("/problems?q=printer")) == [first]
    assert numbers(staff.get("/problems?sort=priority")) == [second, first]
    page = staff.get("/problems?limit=1").get_json()
    assert numbers(staff.get(f"/problems?limit=1&cursor={page['next_cursor']}")) == [first]
    assert staff.get("/problems?owner=x").status_code == 400
    assert staff.get("/problems?sort=title").status_code == 400
    assert staff.get("/problems?cursor=abc").status_code == 422
    assert staff.get("/problems?status=gone").status_code == 400


@contextmanager
def _statements(app):
    """The SQL statements sent while the block runs, in an app context of its own (an
    empty session, as in production: the test's session would hide an N+1)."""
    sent: list[str] = []

    def listener(_conn, _cursor, statement, _parameters, _context, _many):
        sent.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            yield sent
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)


def test_a_page_of_problems_costs_the_same_statements_for_3_or_20_problems(
        app, world, desk, estate):  # noqa: F811
    cis = [estate.ci("vpn-gw-1"), estate.ci("vpn-gw-2")]
    categories = [create_category(None, f"Category {n}", None).id for n in range(3)]
    staff = world.api(desk.agent)

    def raise_problems(start, count):
        for n in range(start, start + count):
            _problem(world, desk.manager, title=f"Problem {n}", category_id=categories[n % 3],
                     affected_cis=[c.id for c in cis[:n % 3]],
                     **({"assignee": desk.agent.username} if n % 2 else {}))

    def page():
        with _statements(app) as sent:
            response = staff.get("/problems?limit=50")
        assert response.status_code == 200
        return response.get_json()["items"], list(sent)

    raise_problems(0, 3)
    few, few_sql = page()
    raise_problems(3, 17)
    many, many_sql = page()
    assert len(few) == 3 and len(many) == 20
    assert len(many_sql) == len(few_sql), many_sql
    # Each problem's own CIs, by id, as the detail endpoint shows them.
    by_title = {p["title"]: p for p in many}
    for n in (0, 1, 2, 19):
        shown = [c["id"] for c in by_title[f"Problem {n}"]["affected_cis"]]
        assert shown == sorted(c.id for c in cis[:n % 3])
    detail = staff.get(f"/problems/{by_title['Problem 2']['number']}").get_json()
    assert detail["affected_cis"] == by_title["Problem 2"]["affected_cis"]
    assert {c["class"] for c in detail["affected_cis"]} and detail["affected_cis"][0]["name"]


def test_the_demo_sla_policies_clock_incidents_but_not_problems(world, desk):
    from servicedesk.demo import seed_sla
    from servicedesk.tickets.models import Ticket

    seed_sla()
    db.session.commit()
    incident = world.incident(desk.employee, title="Printer jam")["number"]
    problem = _problem(world, desk.agent, impact="high", urgency="high")["number"]
    db.session.rollback()
    policy = dict(db.session.execute(select(Ticket.number, Ticket.sla_policy_id).where(
        Ticket.number.in_([incident, problem]))).all())
    assert policy[incident] is not None and policy[problem] is None


# --- odd input -------------------------------------------------------------------------

_FIELDS = ["title", "impact", "urgency", "category_id", "ci_id", "affected_cis", "group",
           "assignee", "root_cause", "workaround", "incidents", "version", "to",
           "resolution_notes", "resolve_incidents", "incident_resolution_code", "priority"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
    st.text(max_size=20), st.sampled_from([0, 2**31, "high", "known_error", "resolved",
                                           "INC000001", ["INC000001"], [1], "agent1", ""]))
_BODIES = st.dictionaries(st.sampled_from(_FIELDS),
                          st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3)), max_size=6)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=_BODIES, path=st.sampled_from([
    "/problems", "/problems/{n}", "/problems/{n}/transition", "/problems/{n}/incidents",
    "/problems/{n}/publish-workaround", "/known-errors?q=%25_", "/problems?q=_%25"]))
def test_no_body_makes_the_problem_api_fail(world, desk, body, path):
    if not hasattr(desk, "prb"):
        desk.inc = world.incident(desk.employee)["number"]
        desk.prb = _problem(world, desk.agent, incidents=[desk.inc])["number"]
    method = ("PATCH" if path == "/problems/{n}" else
              "GET" if "?" in path else "POST")
    response = world.api(desk.agent).request(method, path.format(n=desk.prb),
                                             json=None if method == "GET" else body)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert set(response.get_json()["error"]) == {"code", "message", "fields"}
