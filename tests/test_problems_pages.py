"""Problem pages: an agent walks a problem end to end; requesters find none of it."""

from __future__ import annotations

import re

from test_web_pages import (  # noqa: F401  (fixtures: people, quick_hashes)
    people,
    problem_of,
    quick_hashes,
    raise_incident,
    signed_in,
    text_of,
)

from servicedesk.problems import service as problems
from servicedesk.tickets.admin import create_category


def _number(response) -> str:
    return re.search(r"/console/problems/(PRB\d+)", response.headers["Location"]).group(1)


def test_an_agent_raises_works_publishes_and_resolves_a_problem_in_the_console(app, people):
    network = create_category(None, "Network", None)
    first = raise_incident(people.employee, "VPN drops every few minutes", category_id=network.id)
    second = raise_incident(people.other, "VPN keeps dropping", category_id=network.id)
    agent = signed_in(app, people.agent)

    incident_page = agent.get(f"/console/incidents/{first.number}")
    assert incident_page.status_code == 200
    assert f"/console/problems/new?from={first.number}" in incident_page.get_data(as_text=True)
    form = agent.get(f"/console/problems/new?from={first.number}")
    assert form.status_code == 200 and first.number in form.get_data(as_text=True)
    created = agent.submit(f"/console/problems/new?from={first.number}", "/console/problems/new", {
        "title": "VPN concentrator drops tunnels", "incidents": first.number,
        "impact": "low", "urgency": "medium", "category_id": str(network.id)})
    assert created.status_code == 302, problem_of(created)
    number = _number(created)
    page = f"/console/problems/{number}"
    assert first.number in text_of(agent.get(page))
    # The incident page now names its problem.
    assert number in text_of(agent.get(f"/console/incidents/{first.number}"))

    saved = agent.submit(page, f"{page}/edit", {
        "title": "VPN concentrator drops tunnels", "root_cause": "MTU mismatch",
        "workaround": "Connect with the web VPN", "impact": "low", "urgency": "medium",
        "category_id": str(network.id), "affected_cis": "", "group": "Service Desk",
        "assignee": "agent2", "version": "1"})
    assert saved.status_code == 302, problem_of(saved)
    assert "Bea Backup" in text_of(agent.get(page)).split("Assignee", 1)[1][:20]
    version = problems.get_problem(people.agent, number).version
    moved = agent.submit(page, f"{page}/transition", {"to": "known_error", "version": str(version)})
    assert moved.status_code == 302, problem_of(moved)
    assert "Known error" in text_of(agent.get(page))

    # The other VPN incident gets the known error suggested, and is linked from there.
    other_page = agent.get(f"/console/incidents/{second.number}")
    panel = re.search(r'<ul id="known-error-suggestions">.*?</ul>',
                      other_page.get_data(as_text=True), re.S).group(0)
    assert number in panel and "Connect with the web VPN" in panel
    linked = agent.submit(f"/console/incidents/{second.number}", f"{page}/link",
                          {"incidents": second.number, "back": second.number})
    assert linked.status_code == 302
    assert linked.headers["Location"].endswith(f"/console/incidents/{second.number}")
    assert "2" in text_of(agent.get(page)).split("Linked incidents", 1)[1][:5]

    version = problems.get_problem(people.agent, number).version
    published = agent.submit(page, f"{page}/publish", {"version": str(version)})
    assert published.status_code == 302
    assert "Connect with the web VPN" in text_of(
        signed_in(app, people.employee).get(f"/portal/incidents/{first.number}"))

    found = agent.get("/console/known-errors?q=web+vpn")
    assert found.status_code == 200 and number in text_of(found)
    assert number in text_of(agent.get("/console/problems?status=known_error"))

    version = problems.get_problem(people.agent, number).version
    resolved = agent.submit(page, f"{page}/transition", {
        "to": "resolved", "resolution_notes": "Fixed by CHG000003", "resolve_incidents": "true",
        "incident_resolution_code": "fixed", "version": str(version)})
    assert resolved.status_code == 302, problem_of(resolved)
    for incident in (first, second):
        text = text_of(agent.get(f"/console/incidents/{incident.number}"))
        assert "Resolved" in text and f"Resolved by problem {number}" in text


def test_bad_form_input_is_shown_with_its_reason_and_changes_nothing(app, people):
    problem = problems.create_problem(people.agent, {"title": "Printer ghosting"})
    page = f"/console/problems/{problem.number}"
    agent = signed_in(app, people.agent)
    unknown = agent.submit(page, f"{page}/link", {"incidents": "INC424242"})
    assert unknown.status_code == 422 and "INC424242" in problem_of(unknown)
    bare = agent.submit(page, f"{page}/transition", {"to": "known_error", "version": "1"})
    assert bare.status_code == 422
    assert "Root cause" in problem_of(bare) and "Workaround" in problem_of(bare)
    agent.submit(page, f"{page}/edit", {"title": "Printer ghosting twice", "version": "1"})
    stale = agent.submit(page, f"{page}/edit", {"title": "Lost update", "version": "1"})
    assert stale.status_code == 409
    assert problems.get_problem(people.agent, problem.number).title == "Printer ghosting twice"
    assert agent.get("/console/problems?status=gone").status_code == 400
    assert agent.get("/console/known-errors?ci_id=x").status_code == 400


def test_requesters_find_no_problem_page_link_or_suggestion(app, people):
    network = create_category(None, "Network", None)
    incident = raise_incident(people.employee, "VPN drops", category_id=network.id)
    problem = problems.create_problem(people.agent, {
        "title": "VPN drops", "category_id": network.id, "root_cause": "MTU",
        "workaround": "Use the web VPN", "incidents": [incident.number]})
    employee = signed_in(app, people.employee)
    for path in ("/console/problems", f"/console/problems/{problem.number}",
                 "/console/problems/new", f"/console/problems/new?from={incident.number}",
                 "/console/known-errors?q=vpn"):
        assert employee.get(path).status_code == 404, path
    refused = employee.submit(f"/portal/incidents/{incident.number}",
                              f"/console/problems/{problem.number}/link",
                              {"incidents": incident.number})
    assert refused.status_code == 404
    portal = employee.get(f"/portal/incidents/{incident.number}").get_data(as_text=True)
    assert problem.number not in portal and "/console/problems" not in portal
    assert 'href="/console/problems"' not in employee.get("/portal").get_data(as_text=True)
    assert 'href="/console/problems"' in signed_in(app, people.agent).get("/console") \
        .get_data(as_text=True)
