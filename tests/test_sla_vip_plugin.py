"""The SLA policy hook and the built-in plugin that proves it: VIP requesters get halved
targets.

Everything goes through the real entry points: ``vip_sla`` (plugins/servicedesk_vip_sla)
and the test package ``tests/plugins/recorder``, whose ``recorder`` lets a ticket title
choose its policy and whose ``exploder`` answers the hook with an exception or nonsense
for titles carrying a marker (and is asked first). Time stands still at Monday
12 January 2026, 09:00 in Berlin; the policies are the demo set ("Standard": 3 / 8
business hours Mon-Fri 09-17 Berlin; "P1 critical": 30 min / 4 h around the clock).
Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sd_test_recorder import exploder
from servicedesk_vip_sla.plugin import halved
from sqlalchemy import select

from servicedesk.cli import main as cli
from servicedesk.demo import seed_demo, seed_sla
from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.plugins import plugin_manager
from servicedesk.sla.models import SlaClock
from servicedesk.tickets.models import Ticket
from test_sla_clocks import FrozenClock, _run_cli, berlin

STANDARD = {"response_minutes": 180, "resolution_minutes": 480, "adjusted_by": None}
VIP_STANDARD = {"response_minutes": 90, "resolution_minutes": 240, "adjusted_by": "vip_sla"}


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock(berlin(12, 9))
    for where in ("servicedesk.types.utcnow", "servicedesk.tickets.service.utcnow",
                  "servicedesk.incidents.service.utcnow", "servicedesk.tickets.models.utcnow"):
        monkeypatch.setattr(where, frozen)
    return frozen


@pytest.fixture
def people(world, desk):
    """The demo policies, a VIP group with one member, and an ordinary employee."""
    seed_sla()
    vip_group = world.group("VIP")
    vip = world.user("requester", "vera", groups=[vip_group])
    return desk, vip, desk.employee, vip_group


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _get(world, user, number) -> dict:
    response = world.api(user).get(f"/incidents/{number}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _history(world, user, number, field) -> list[tuple]:
    entries = world.api(user).get(f"/incidents/{number}/history").get_json()
    return [(e["old_value"], e["new_value"]) for e in entries if e["field"] == field]


# --- the built-in plugin --------------------------------------------------------------


def test_the_vip_plugin_is_found_through_its_entry_point(app):
    pm = plugin_manager()
    assert pm.get_plugin("vip_sla").__name__ == "servicedesk_vip_sla.plugin"
    dists = {plugin.__name__: dist.project_name for plugin, dist in pm.list_plugin_distinfo()}
    assert dists["servicedesk_vip_sla.plugin"] == "servicedesk"


@pytest.mark.parametrize("minutes, half", [(180, 90), (45, 23), (3, 2), (2, 1), (1, 1),
                                           (None, None)])
def test_halving_rounds_up_to_whole_minutes_and_never_below_one(minutes, half):
    assert halved(minutes) == half


def test_a_vips_incident_has_halved_targets_and_earlier_due_instants(world, people, clock):
    desk, vip, employee, _group = people
    vip_body = world.incident(vip, title="Laptop dead before the board meeting")
    plain_body = world.incident(employee, title="Laptop dead")

    assert plain_body["sla"]["policy"] == vip_body["sla"]["policy"] == "Standard"
    assert plain_body["sla"]["targets"] == STANDARD
    assert vip_body["sla"]["targets"] == VIP_STANDARD
    # Standard from Monday 09:00: response 12:00, resolution 17:00 (warning at 75 %) ...
    assert _at(plain_body["sla"]["response"]["due_at"]) == berlin(12, 12)
    assert _at(plain_body["sla"]["resolution"]["due_at"]) == berlin(12, 17)
    # ... halved for the VIP: 1.5 h and 4 h of business time.
    assert _at(vip_body["sla"]["response"]["due_at"]) == berlin(12, 10, 30)
    assert _at(vip_body["sla"]["resolution"]["due_at"]) == berlin(12, 13)
    assert _at(vip_body["sla"]["resolution"]["warning_at"]) == berlin(12, 12)

    clock.now = berlin(12, 11)
    agent = desk.agent
    later = _get(world, agent, vip_body["number"])["sla"]
    assert later["response"]["breached"] is True
    assert later["resolution"]["elapsed_percent"] == 50.0
    assert _get(world, agent, plain_body["number"])["sla"]["response"]["breached"] is False
    # The queue (read without ORM objects) says the same as the detail.
    items = world.api(agent).get("/incidents?sort=due").get_json()["items"]
    assert [i["number"] for i in items] == [vip_body["number"], plain_body["number"]]
    assert items[0]["sla"] == _get(world, agent, vip_body["number"])["sla"]
    # Breaches next puts the VIP first; the history says who halved what.
    assert world.api(agent).get("/sla/breaches-next").get_json()[0]["number"] == \
        vip_body["number"]
    assert _history(world, agent, vip_body["number"], "sla_targets") == [
        (None, "response 90 min, resolution 240 min (vip_sla)")]
    assert _history(world, agent, plain_body["number"], "sla_targets") == []


def test_a_vips_critical_incident_halves_the_critical_policy(world, people, clock):
    _desk, vip, _employee, _group = people
    body = world.incident(vip, impact="high", urgency="high")
    assert body["priority"] == 1 and body["sla"]["policy"] == "P1 critical"
    assert body["sla"]["targets"] == {"response_minutes": 15, "resolution_minutes": 120,
                                      "adjusted_by": "vip_sla"}
    assert _at(body["sla"]["response"]["due_at"]) == berlin(12, 9, 15)


def test_becoming_a_vip_later_then_repair_halves_the_targets_keeping_elapsed_time(
        app, world, people, clock):
    desk, _vip, employee, _group = people
    agent = world.api(desk.agent)
    number = world.incident(employee)["number"]
    clock.advance(hours=1)
    assert agent.post(f"/incidents/{number}/transition", json={
        "to": "pending", "pending_reason": "awaiting_requester"}).status_code == 200
    clock.advance(hours=1)
    assert agent.post(f"/incidents/{number}/transition",
                      json={"to": "in_progress"}).status_code == 200
    before = _get(world, desk.agent, number)["sla"]
    assert before["targets"] == STANDARD
    # 8 h from 09:00 with 1 h paused: Tuesday 10:00; 1 h of 8 h spent.
    assert _at(before["resolution"]["due_at"]) == berlin(13, 10)
    assert before["resolution"]["elapsed_percent"] == 12.5

    assert "emma is a member of VIP" in _run_cli(app, "groups", "add-member", "VIP", "emma")
    # Joining the group changes no ticket by itself ...
    assert _get(world, desk.agent, number)["sla"] == before
    # ... repair recomputes from the ticket's start, pause kept: 4 h + 1 h from 09:00.
    assert "1 of 1 open tickets changed" in _run_cli(app, "sla", "repair")
    after = _get(world, desk.agent, number)["sla"]
    assert after["policy"] == "Standard" and after["targets"] == VIP_STANDARD
    assert _at(after["resolution"]["due_at"]) == berlin(12, 14)
    assert _at(after["response"]["due_at"]) == berlin(12, 11, 30)
    assert after["resolution"]["elapsed_percent"] == 25.0  # the same hour, of 4 h now
    ticket_id = db.session.scalar(select(Ticket.id).where(Ticket.number == number))
    rows = db.session.scalars(select(SlaClock).where(SlaClock.ticket_id == ticket_id)).all()
    assert {(r.metric, r.started_at, r.paused_seconds, r.target_seconds) for r in rows} == {
        ("response", berlin(12, 9), 3600, 90 * 60),
        ("resolution", berlin(12, 9), 3600, 240 * 60)}
    assert "0 of 1 open tickets changed" in _run_cli(app, "sla", "repair")

    # Leaving the group and repairing gives the policy's own targets back.
    _run_cli(app, "groups", "remove-member", "VIP", "emma")
    assert "1 of 1 open tickets changed" in _run_cli(app, "sla", "repair")
    again = _get(world, desk.agent, number)["sla"]
    assert again == before
    assert _history(world, desk.agent, number, "sla_targets") == [
        ("response 180 min, resolution 480 min",
         "response 90 min, resolution 240 min (vip_sla)"),
        ("response 90 min, resolution 240 min (vip_sla)",
         "response 180 min, resolution 480 min"),
    ]


def test_group_membership_commands_name_an_unknown_group_or_user(app, world, people):
    db.session.commit()
    for args, missing in ((("NoSuchGroup", "emma"), "NoSuchGroup"), (("VIP", "nobody"), "nobody")):
        result = CliRunner().invoke(cli, ["groups", "add-member", *args],
                                    obj=ScriptInfo(create_app=lambda: app))
        assert result.exit_code == 1 and missing in result.output, result.output
        assert "Traceback" not in result.output
    db.session.rollback()
    assert [g.name for g in identity.get_user("emma").groups] == []


def test_the_vip_group_is_the_configured_one(app, world, people, clock):
    _desk, vip, _employee, _group = people
    executives = world.group("Executives")
    boss = world.user("requester", "ceo", groups=[executives])
    app.config["SERVICEDESK_VIP_GROUP"] = "Executives"
    assert world.incident(boss)["sla"]["targets"] == VIP_STANDARD
    assert world.incident(vip)["sla"]["targets"] == STANDARD
    app.config["SERVICEDESK_VIP_GROUP"] = ""  # off
    assert world.incident(boss)["sla"]["targets"] == STANDARD


def test_a_vips_incident_without_a_policy_stays_without_sla(world, desk):
    vip = world.user("requester", "vera", groups=[world.group("VIP")])
    body = world.incident(vip)
    assert body["sla"] == {"policy": None, "targets": None, "response": None,
                           "resolution": None}


def test_the_demo_seeds_a_vip_whose_incidents_get_halved_targets(app, world, clock):
    accounts = seed_demo()
    assert ("vip", "requester") in accounts
    assert seed_demo() == accounts  # idempotent
    vip = identity.get_user("vip")
    assert [g.name for g in vip.groups] == ["VIP"]
    assert world.incident(vip)["sla"]["targets"] == VIP_STANDARD


# --- the hook: other plugins ----------------------------------------------------------


def test_a_plugin_may_supply_another_policy_or_none(world, people, clock):
    desk, _vip, employee, _group = people
    body = world.incident(employee, title="Server room flooded [sla-policy=P1 critical]")
    assert body["priority"] == 3 and body["sla"]["policy"] == "P1 critical"
    assert body["sla"]["targets"] == {"response_minutes": 30, "resolution_minutes": 240,
                                      "adjusted_by": "recorder"}
    assert _at(body["sla"]["resolution"]["due_at"]) == berlin(12, 13)
    assert _history(world, desk.agent, body["number"], "sla_policy") == [(None, "P1 critical")]

    none = world.incident(employee, title="Wallpaper request [sla-none]")
    assert none["sla"] == {"policy": None, "targets": None, "response": None,
                           "resolution": None}


def test_a_plugin_that_raises_or_answers_nonsense_is_skipped(app, world, people, clock, caplog):
    desk, vip, employee, _group = people
    failures = app.extensions["servicedesk"]["failures"]
    with caplog.at_level(logging.ERROR, logger="servicedesk.plugins"):
        for marker in exploder.SLA_MISBEHAVIOUR:
            seen = failures.get("exploder", 0)
            plain = world.incident(employee, title=f"Printer {marker}")
            assert plain["sla"]["policy"] == "Standard", marker
            assert plain["sla"]["targets"] == STANDARD, marker
            # The next plugin still answers: vip_sla halves a VIP's targets.
            special = world.incident(vip, title=f"Printer {marker}")
            assert special["sla"]["targets"] == VIP_STANDARD, marker
            assert failures["exploder"] >= seen + 2, marker  # counted, once per refresh
    logged = [r.getMessage() for r in caplog.records if "'exploder'" in r.getMessage()]
    assert len(logged) == failures["exploder"]
    assert any("unknown keys" in m for m in logged) and any("failed in" in m for m in logged)

    # An edit that makes the plugin fail is saved too.
    number = world.incident(employee, title="Scanner")["number"]
    changed = world.api(desk.agent).patch(f"/incidents/{number}", json={
        "title": "Scanner [sla-raise]", "impact": "high", "version": 1})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["title"] == "Scanner [sla-raise]"
    assert changed.get_json()["sla"]["targets"] == STANDARD
    assert _get(world, desk.agent, number)["priority"] == 2
