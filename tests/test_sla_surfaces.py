"""Where people see the SLA: every field of the API's ``sla`` object, the console's
escalation colour and SLA facts, and the requester's portal, including targets a plugin
adjusted (the built-in vip_sla). Time stands still at Monday 12 January 2026, 09:00 in
Berlin; the policies are the demo set. Runs on SQLite and PostgreSQL.

The queue's SLA colours, its "Breaches next" sort and the portal's open time and
target are tested in test_sla_policies.py; the clocks' values in test_sla_clocks.py.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update
from werkzeug.security import generate_password_hash

from servicedesk.demo import seed_sla
from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.tickets.models import Ticket
from test_sla_clocks import FrozenClock, berlin
from test_web_pages import PASSWORD, signed_in, text_of

CLOCK_FIELDS = {"due_at", "warning_at", "elapsed_percent", "paused", "breached", "met_at"}


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock(berlin(12, 9))
    for where in ("servicedesk.types.utcnow", "servicedesk.tickets.service.utcnow",
                  "servicedesk.incidents.service.utcnow", "servicedesk.tickets.models.utcnow"):
        monkeypatch.setattr(where, frozen)
    return frozen


@pytest.fixture
def users(world, desk, monkeypatch):
    """The demo policies; an agent and a VIP requester who can sign in (cheap hashes)."""
    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    seed_sla()
    agent = world.user("agent", "pageagent", groups=[desk.l1], password=PASSWORD)
    vip = world.user("requester", "vera", groups=[world.group("VIP")], password=PASSWORD)
    return desk, agent, vip


def _set_level(number: str, level: int) -> None:
    """What an escalation step that raises the level leaves on the ticket."""
    db.session.execute(update(Ticket).where(Ticket.number == number)
                       .values(escalation_level=level))
    db.session.commit()
    db.session.expire_all()


def test_every_incident_in_the_api_has_its_sla_and_escalation_level(world, users, clock):
    desk, agent, vip = users
    running = world.incident(desk.employee, title="Running")["number"]
    paused = world.incident(desk.employee, title="Paused")["number"]
    world.api(agent).post(f"/incidents/{paused}/transition", json={
        "to": "pending", "pending_reason": "awaiting_requester"})
    _set_level(running, 2)
    clock.advance(hours=4)
    api = world.api(agent)
    items = {i["title"]: i for i in api.get("/incidents").get_json()["items"]}
    for title, item in items.items():
        detail = api.get(f"/incidents/{item['number']}").get_json()
        assert (item["sla"], item["escalation_level"]) == (detail["sla"],
                                                           detail["escalation_level"])
        sla = item["sla"]
        assert set(sla) == {"policy", "targets", "response", "resolution"}
        assert set(sla["response"]) == set(sla["resolution"]) == CLOCK_FIELDS
    running_sla, paused_sla = items["Running"]["sla"], items["Paused"]["sla"]
    assert items["Running"]["escalation_level"] == 2 and items["Paused"]["escalation_level"] == 0
    assert running_sla["response"]["breached"] is True  # 3 h passed at 12:00
    assert running_sla["resolution"]["elapsed_percent"] == 50.0
    assert running_sla["resolution"]["paused"] is False
    assert paused_sla["resolution"]["paused"] is True and paused_sla["resolution"]["due_at"] is None
    assert paused_sla["resolution"]["elapsed_percent"] == 0.0


def test_the_queue_shows_the_escalation_level_as_a_colour(app, world, users, clock):
    desk, agent, _vip = users
    numbers = [world.incident(desk.employee, title=f"Level {n}")["number"] for n in range(4)]
    for level, number in enumerate(numbers):
        _set_level(number, level)
    html = signed_in(app, agent).get("/console").get_data(as_text=True)
    for level, number in enumerate(numbers):
        row = re.search(rf'<tr data-number="{number}".*?</tr>', html, re.S).group(0)
        badge = re.search(r'<span class="badge esc esc-(\d)" data-escalation="(\d)"', row)
        if level == 0:
            assert badge is None, row
        else:
            assert badge.groups() == (str(level), str(level)), row
            assert "Escalation level" in row


def test_the_console_detail_shows_both_clocks_and_who_set_the_targets(app, world, users, clock):
    desk, agent, vip = users
    number = world.incident(vip, title="Board laptop")["number"]
    _set_level(number, 3)
    page = signed_in(app, agent).get(f"/console/incidents/{number}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'class="badge esc esc-3"' in html
    facts = re.search(r'<dd id="sla">(.*?)</dd>', html, re.S).group(1)
    assert "2026-01-12T09:30:00+00:00" in facts  # response due 10:30 Berlin (90 min)
    assert "2026-01-12T12:00:00+00:00" in facts  # resolution due 13:00 Berlin (4 h)
    text = text_of(page)
    assert "target 1 h 30 min" in text and "target 4 h 0 min" in text
    assert "Targets set by the plugin vip_sla" in text
    plain = world.incident(desk.employee, title="Plain laptop")["number"]
    assert "Targets set by the plugin" not in text_of(
        signed_in(app, agent).get(f"/console/incidents/{plain}"))


def test_the_vips_portal_shows_the_halved_target(app, world, users, clock):
    _desk, _agent, vip = users
    number = world.incident(vip)["number"]
    clock.advance(hours=2)
    client = signed_in(app, vip)
    detail = client.get(f"/portal/incidents/{number}")
    target = re.search(r'<dd id="sla-target">(.*?)</dd>', detail.get_data(as_text=True), re.S)
    assert "Resolution due" in target.group(1)
    assert "2026-01-12T12:00:00+00:00" in target.group(1)  # 4 h, not 8
    assert "2 h 0 min" in text_of(detail)  # open for
    clock.advance(hours=3)
    assert "overdue" in text_of(client.get(f"/portal/incidents/{number}"))
