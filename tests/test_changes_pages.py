"""Change pages: the workflow walked end to end through the forms, as a browser would."""

from __future__ import annotations

import json
import re
from html import unescape
from datetime import datetime, timedelta, timezone

from test_web_pages import PASSWORD, problem_of, quick_hashes, signed_in, text_of  # noqa: F401

from servicedesk.extensions import db

START = (datetime.now(timezone.utc) + timedelta(days=7)).replace(hour=10, minute=0, second=0,
                                                                 microsecond=0)


def local(value: datetime) -> str:  # users here are in UTC
    return value.strftime("%Y-%m-%dT%H:%M")


def people(world):
    class People:
        sd = world.group("Service Desk", 1)
        cab = world.group("CAB", 2)
        agent = world.user("agent", "agent1", groups=["Service Desk"], password=PASSWORD)
        manager = world.user("manager", "boss", groups=["Service Desk"], password=PASSWORD)
        member = world.user("agent", "cab1", groups=["CAB"], password=PASSWORD)
        admin = world.user("admin", "root", password=PASSWORD)
        employee = world.user("requester", "emma", password=PASSWORD)

    People.sd.manager_id = People.manager.id
    db.session.commit()
    return People


def test_a_normal_change_is_walked_through_the_pages_end_to_end(app, world):
    p = people(world)
    agent = signed_in(app, p.agent)
    assert "Changes" in text_of(agent.get("/changes"))
    assert "No changes." in text_of(agent.get("/changes?caused_incidents=true&status=bogus"))
    # Bad input: the page says which field, and nothing is raised.
    bad = agent.submit("/changes/new", "/changes/new", {
        "title": "Patch mail", "planned_start": local(START), "planned_end": local(START)})
    assert bad.status_code == 422 and "planned_end" in problem_of(bad)
    assert "No changes." in text_of(agent.get("/changes"))
    created = agent.submit("/changes/new", "/changes/new", {
        "title": "Patch mail", "change_type": "normal",
        "implementation_plan": "Patch.", "backout_plan": "Roll back.", "test_plan": "Send mail.",
        "planned_start": local(START), "planned_end": local(START + timedelta(hours=1)),
        "risk_users_affected": "none", "risk_tested": "yes", "risk_backout": "easy",
        "risk_downtime": "no"})
    assert created.status_code == 302, problem_of(created)
    page = created.headers["Location"]
    assert page.endswith("/changes/CHG000001")
    assert "Low risk" in text_of(agent.get(page))

    def step(client, to, **fields):
        html = client.get(page).get_data(as_text=True)
        version = re.search(r'name="version" value="(\d+)"', html).group(1)
        return client.submit(page, page + "/transition", {"to": to, "version": version,
                                                          **fields})

    html = agent.get(page).get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    assigned = agent.submit(page, page + "/edit", {"version": version, "group": "Service Desk",
                                                   "assignee": "agent1"})
    assert assigned.status_code == 302
    assert re.search(r'<option value="agent1" selected>', agent.get(page).get_data(as_text=True))
    assert step(agent, "assessment").status_code == 302
    assert step(agent, "authorization").status_code == 302
    text = text_of(agent.get(page))
    assert "Authorization" in text and "Approvals" in text
    # The manager approves on the change page, through the approvals panel.
    boss = signed_in(app, p.manager)
    assert 'href="/changes/CHG000001"' in boss.get("/approvals").get_data(as_text=True)
    html = boss.get(page).get_data(as_text=True)
    action = re.search(r'action="(/approvals/\d+/decision)"', html).group(1)
    decided = boss.submit(page, action, {"decision": "approve", "next": page})
    assert decided.status_code == 302
    assert "Scheduled" in text_of(agent.get(page))
    calendar = agent.get(f"/changes/calendar?view=week&date={START.date().isoformat()}")
    assert "CHG000001" in text_of(calendar)
    assert step(agent, "implementing").status_code == 302
    assert step(agent, "review").status_code == 302
    refused = step(agent, "closed")
    assert refused.status_code == 422 and "review_outcome" in problem_of(refused)
    assert step(agent, "closed", review_outcome="successful").status_code == 302
    assert "Successful" in text_of(agent.get(page))


def test_requesters_find_no_change_pages_and_agents_no_admin_page(app, world):
    p = people(world)
    number = world.api(p.agent).post("/changes", json={"title": "x"}).get_json()["number"]
    employee = signed_in(app, p.employee)
    for path in ("/changes", "/changes/new", f"/changes/{number}", "/changes/calendar",
                 "/changes/admin"):
        assert employee.get(path).status_code == 404, path
    assert "Changes" not in text_of(employee.get("/portal"))
    assert signed_in(app, p.agent).get("/changes/admin").status_code == 404


def test_admins_add_templates_and_freeze_windows_on_the_settings_page(app, world):
    p = people(world)
    root = signed_in(app, p.admin)
    assert root.submit("/changes/admin", "/changes/admin/templates", {
        "name": "Restart web server", "implementation_plan": "systemctl restart"}
    ).status_code == 302
    bad = root.submit("/changes/admin", "/changes/admin/freeze-windows", {
        "name": "Year end", "starts_at": local(START), "ends_at": local(START)})
    assert bad.status_code == 422 and "ends_at" in problem_of(bad)
    assert root.submit("/changes/admin", "/changes/admin/freeze-windows", {
        "name": "Year end", "starts_at": local(START),
        "ends_at": local(START + timedelta(days=2))}).status_code == 302
    text = text_of(root.get("/changes/admin"))
    assert "Restart web server" in text and "Year end" in text
    broken = root.submit("/changes/admin", "/changes/admin/risk-model", {"model": "{"})
    assert broken.status_code == 422 and "model" in problem_of(broken)
    html = root.get("/changes/admin").get_data(as_text=True)
    model = json.loads(unescape(re.search(r'<textarea name="model"[^>]*>(.*?)</textarea>',
                                          html, re.S).group(1)))
    model["thresholds"] = {"medium": 1, "high": 2}
    saved = root.submit("/changes/admin", "/changes/admin/risk-model",
                        {"model": json.dumps(model)})
    assert saved.status_code == 302
    assert "Medium risk from 1 points, high risk from 2." in text_of(root.get("/changes/admin"))
    month = text_of(root.get(f"/changes/calendar?date={START.date().isoformat()}"))
    assert "Year end" in month and "Freeze" in month
