"""SLA clocks: known answers from hand-built histories, then end to end through the API.

The pure part calls ``compute_clocks`` on fixed instants. The integration part freezes
time (every module that reads the clock) and drives incidents through the REST API;
it runs on SQLite and PostgreSQL like every database test. The calendars are the demo
set: "Business hours" (Mon-Fri 09:00-17:00, Europe/Berlin; January is UTC+1) and
"24x7"; the policies "P1 critical" (priority 1: 30 min / 4 h, 24x7) and "Standard"
(3 / 8 business hours, warning at 75 %).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select, update

from servicedesk.cli import main as cli
from servicedesk.demo import seed_sla
from servicedesk.extensions import db
from servicedesk.sla import admin as sla_admin
from servicedesk.sla.calendar import BusinessCalendar
from servicedesk.sla.clocks import StatusChange, compute_clocks, elapsed_percent
from servicedesk.sla.models import SlaCalendar, SlaClock, SlaPolicy
from servicedesk.sla.service import repair_clocks
from servicedesk.tickets.models import AuditEntry, Ticket

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = BusinessCalendar("Europe/Berlin", {d: [("09:00", "17:00")] for d in range(5)})
ALWAYS = BusinessCalendar.always()


def berlin(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    """An instant given in Berlin wall time (January 2026: Mon 12, Fri 9, Sat 10...)."""
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def policy(response=180, resolution=480, pause=("pending:awaiting_requester",), warning=75):
    return SimpleNamespace(response_minutes=response, resolution_minutes=resolution,
                           pause_statuses=list(pause), warning_percent=warning)


def ticket(created, first_response=None):
    return SimpleNamespace(kind="incident", created_at=created, first_response_at=first_response)


def clocks(created, changes=(), first_response=None, now=None, pol=None, cal=OFFICE):
    events = [StatusChange(created, "new")] + [StatusChange(*c) for c in changes]
    return compute_clocks(ticket(created, first_response), events, pol or policy(), cal,
                          now or created)


# --- pure: known answers ---------------------------------------------------------------


def test_business_hours_due_dates_skip_the_weekend():
    # Friday 15:00: 2 business hours left that day, the rest on Monday from 09:00.
    result = clocks(berlin(9, 15), now=berlin(9, 16))
    response, resolution = result["response"], result["resolution"]
    assert response.due_at == berlin(12, 10)          # 2 h Fri + 1 h Mon
    assert response.warning_at == berlin(12, 9, 15)   # 75 % of 3 h = 2 h 15
    assert resolution.due_at == berlin(12, 15)        # 2 h Fri + 6 h Mon
    assert resolution.warning_at == berlin(12, 13)    # 6 h
    assert response.started_at == berlin(9, 15)
    assert response.paused == timedelta(0) and response.paused_since is None
    assert response.met_at is None and response.breached_at is None


def test_a_clock_that_runs_past_its_due_instant_is_breached_at_that_instant():
    result = clocks(berlin(9, 15), now=berlin(12, 10))
    assert result["response"].breached_at == berlin(12, 10)  # due exactly now: breached
    assert result["resolution"].breached_at is None
    assert clocks(berlin(9, 15), now=berlin(12, 9, 59))["response"].breached_at is None


def test_pending_on_the_requester_pauses_both_clocks_and_moves_due_out():
    changes = [(berlin(12, 10), "pending", "awaiting_requester"),
               (berlin(12, 12), "in_progress")]
    result = clocks(berlin(12, 9), changes, now=berlin(12, 13))
    # Resolution: 1 h, 2 h paused, then 7 h from 12:00 = 5 h Monday + 2 h Tuesday.
    assert result["resolution"].due_at == berlin(13, 11)
    assert result["resolution"].paused == timedelta(hours=2)
    assert result["resolution"].row_values()["paused_seconds"] == 7200
    # Response: 09:00 + 3 h + 2 h paused.
    assert result["response"].due_at == berlin(12, 14)
    assert result["response"].paused_since is None


def test_pending_on_a_vendor_does_not_pause_under_the_default_policy():
    changes = [(berlin(12, 10), "pending", "awaiting_vendor"),
               (berlin(12, 12), "in_progress")]
    result = clocks(berlin(12, 9), changes, now=berlin(12, 13))
    assert result["resolution"].due_at == berlin(12, 17)
    assert result["resolution"].paused == timedelta(0)
    # ... unless the policy pauses on "pending" whatever the reason.
    every_pending = clocks(berlin(12, 9), changes, now=berlin(12, 13), pol=policy(pause=["pending"]))
    assert every_pending["resolution"].due_at == berlin(13, 11)


def test_while_paused_the_due_instant_is_unknown_and_the_pause_is_in_progress():
    changes = [(berlin(12, 10), "pending", "awaiting_requester")]
    resolution = clocks(berlin(12, 9), changes, now=berlin(12, 11))["resolution"]
    assert resolution.due_at is None and resolution.warning_at is None
    assert resolution.paused_since == berlin(12, 10)
    assert resolution.paused == timedelta(0)  # only finished pauses are totalled
    row = SimpleNamespace(**resolution.row_values())
    assert elapsed_percent(row, OFFICE, berlin(12, 16)) == 12.5  # 1 h of 8, frozen


def test_a_pause_after_the_due_instant_does_not_hide_the_breach():
    changes = [(berlin(12, 15), "pending", "awaiting_requester")]
    response = clocks(berlin(12, 9), changes, now=berlin(12, 16))["response"]
    assert response.due_at == berlin(12, 12)
    assert response.breached_at == berlin(12, 12)


def test_the_response_clock_stops_at_the_first_staff_reply():
    response = clocks(berlin(9, 15), first_response=berlin(12, 9, 30),
                      now=berlin(12, 11))["response"]
    assert response.met_at == berlin(12, 9, 30)
    assert response.due_at == berlin(12, 10) and response.breached_at is None
    late = clocks(berlin(9, 15), first_response=berlin(12, 10, 30), now=berlin(12, 11))
    assert late["response"].met_at == berlin(12, 10, 30)
    assert late["response"].breached_at == berlin(12, 10)


def test_resolving_stops_the_resolution_clock_and_a_reopen_resumes_it_keeping_elapsed_time():
    resolved = [(berlin(12, 11), "resolved")]
    while_resolved = clocks(berlin(12, 9), resolved, now=berlin(12, 12))["resolution"]
    assert while_resolved.met_at == berlin(12, 11)
    assert while_resolved.due_at == berlin(12, 17)  # what it would have been: 2 h + 6 h
    assert while_resolved.breached_at is None
    # Reopened Tuesday 09:00: 2 h were spent, the resolved spell is excluded, 6 h remain.
    reopened = clocks(berlin(12, 9), resolved + [(berlin(13, 9), "in_progress")],
                      now=berlin(13, 10))["resolution"]
    assert reopened.met_at is None
    assert reopened.due_at == berlin(13, 15)
    assert reopened.paused == timedelta(hours=6)  # Mon 11:00-17:00 of business time
    # Resolving never answered the requester later than that: the response clock is met.
    assert clocks(berlin(12, 9), resolved, now=berlin(12, 12))["response"].met_at == berlin(12, 11)


def test_a_resolved_then_closed_ticket_is_met_when_it_was_resolved():
    changes = [(berlin(12, 11), "resolved"), (berlin(13, 11), "closed")]
    assert clocks(berlin(12, 9), changes, now=berlin(14, 9))["resolution"].met_at == berlin(12, 11)


def test_another_policy_re_evaluates_from_the_start_keeping_pauses():
    changes = [(berlin(12, 10), "pending", "awaiting_requester"),
               (berlin(12, 12), "in_progress")]
    standard = clocks(berlin(12, 9), changes, now=berlin(12, 13))
    p1 = clocks(berlin(12, 9), changes, now=berlin(12, 13),
                pol=policy(response=30, resolution=240), cal=ALWAYS)
    assert standard["resolution"].started_at == p1["resolution"].started_at == berlin(12, 9)
    # 4 h around the clock, 2 h of it paused: 09:00 + 6 h.
    assert p1["resolution"].due_at == berlin(12, 15)
    assert p1["resolution"].paused == timedelta(hours=2)
    # 30 min were used up before the pause: breached at 09:30, still.
    assert p1["response"].breached_at == berlin(12, 9, 30)


def test_a_policy_without_a_target_has_no_clock_for_it():
    result = clocks(berlin(12, 9), pol=policy(response=None))
    assert result["response"] is None and result["resolution"] is not None


def test_compute_clocks_is_pure():
    args = dict(created=berlin(9, 15), changes=[(berlin(12, 10), "pending", "awaiting_requester")],
                now=berlin(12, 12))
    assert clocks(**args) == clocks(**args)


# --- end to end ----------------------------------------------------------------------


class FrozenClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    """Time stands still at Monday 12 January 2026, 09:00 Berlin, until moved."""
    frozen = FrozenClock(berlin(12, 9))
    for where in ("servicedesk.types.utcnow", "servicedesk.tickets.service.utcnow",
                  "servicedesk.incidents.service.utcnow", "servicedesk.tickets.models.utcnow"):
        monkeypatch.setattr(where, frozen)
    return frozen


@pytest.fixture
def sla(app, desk):
    seed_sla()
    return SimpleNamespace(agent=desk.agent, employee=desk.employee, admin=desk.admin)


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _incident(api, number):
    response = api.get(f"/incidents/{number}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _raise(world, who, **fields):
    return world.incident(who, **fields)["number"]


def test_a_new_incident_gets_its_policy_clocks_and_due_dates(world, sla, clock):
    clock.now = berlin(9, 15)  # a Friday afternoon
    body = world.incident(sla.employee)
    assert body["sla"]["policy"] == "Standard"
    assert body["escalation_level"] == 0
    resolution = body["sla"]["resolution"]
    assert _at(resolution["due_at"]) == berlin(12, 15)
    assert _at(resolution["warning_at"]) == berlin(12, 13)
    assert resolution["paused"] is False and resolution["breached"] is False
    assert resolution["elapsed_percent"] == 0.0 and resolution["met_at"] is None
    assert _at(body["sla"]["response"]["due_at"]) == berlin(12, 10)
    assert body["version"] == 1  # SLA bookkeeping never bumps the version
    clock.now = berlin(12, 11)
    later = _incident(world.api(sla.agent), body["number"])["sla"]
    assert later["response"]["breached"] is True and later["response"]["elapsed_percent"] > 100
    assert later["resolution"]["elapsed_percent"] == 50.0  # 2 h Fri + 2 h Mon of 8 h
    history = world.api(sla.agent).get(f"/incidents/{body['number']}/history").get_json()
    assert [(e["action"], e["old_value"], e["new_value"]) for e in history
            if e["field"] == "sla_policy"] == [("sla_policy", None, "Standard")]


def test_pending_on_the_requester_excludes_that_time_but_a_vendor_does_not(world, sla, clock):
    agent = world.api(sla.agent)
    requester = _raise(world, sla.employee, title="Needs details")
    vendor = _raise(world, sla.employee, title="Needs the vendor")
    clock.advance(hours=1)
    for number, reason in ((requester, "awaiting_requester"), (vendor, "awaiting_vendor")):
        response = agent.post(f"/incidents/{number}/transition",
                              json={"to": "pending", "pending_reason": reason})
        assert response.status_code == 200, response.get_json()
    paused = _incident(agent, requester)["sla"]["resolution"]
    assert paused["paused"] is True and paused["due_at"] is None
    clock.advance(hours=2)
    # The requester answers: back to IT, the clock runs again from 12:00.
    reply = world.api(sla.employee).post(f"/incidents/{requester}/comments",
                                         json={"body": "Here you are."})
    assert reply.status_code == 201
    agent.post(f"/incidents/{vendor}/transition", json={"to": "in_progress"})
    resumed = _incident(agent, requester)
    assert resumed["status"] == "in_progress"
    assert _at(resumed["sla"]["resolution"]["due_at"]) == berlin(13, 11)
    assert _at(resumed["sla"]["response"]["due_at"]) == berlin(12, 14)
    assert _at(_incident(agent, vendor)["sla"]["resolution"]["due_at"]) == berlin(12, 17)
    row = db.session.scalars(select(SlaClock).join(Ticket, Ticket.id == SlaClock.ticket_id)
                             .where(Ticket.number == requester,
                                    SlaClock.metric == "resolution")).one()
    assert row.paused_seconds == 7200 and row.paused_since is None


def test_the_response_clock_is_met_by_the_first_public_staff_reply_only(world, sla, clock):
    agent = world.api(sla.agent)
    number = _raise(world, sla.employee)
    clock.advance(minutes=20)
    world.api(sla.employee).post(f"/incidents/{number}/comments", json={"body": "Any news?"})
    clock.advance(minutes=20)
    agent.post(f"/incidents/{number}/comments", json={"body": "Looking", "public": False})
    assert _incident(agent, number)["sla"]["response"]["met_at"] is None
    clock.advance(minutes=20)
    agent.post(f"/incidents/{number}/comments", json={"body": "On it."})
    clock.advance(minutes=20)
    agent.post(f"/incidents/{number}/comments", json={"body": "Still on it."})
    response = _incident(agent, number)["sla"]["response"]
    assert _at(response["met_at"]) == berlin(12, 10)
    assert response["breached"] is False and response["elapsed_percent"] == pytest.approx(33.3)


def test_resolution_stops_when_resolved_and_resumes_on_reopen(world, sla, clock):
    agent = world.api(sla.agent)
    number = _raise(world, sla.employee)
    clock.now = berlin(12, 11)
    resolved = agent.post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Rebooted."})
    assert resolved.status_code == 200
    assert _at(resolved.get_json()["sla"]["resolution"]["met_at"]) == berlin(12, 11)
    clock.now = berlin(13, 9)
    reopened = world.api(sla.employee).post(f"/incidents/{number}/transition",
                                            json={"to": "in_progress"})
    assert reopened.status_code == 200, reopened.get_json()
    resolution = reopened.get_json()["sla"]["resolution"]
    assert resolution["met_at"] is None
    assert _at(resolution["due_at"]) == berlin(13, 15)  # 2 h spent, 6 h left from Tue 09:00
    assert resolution["elapsed_percent"] == 25.0


def test_a_priority_change_switches_policy_from_the_start_keeping_pauses_audited(world, sla, clock):
    agent = world.api(sla.agent)
    number = _raise(world, sla.employee)
    clock.advance(hours=1)
    agent.post(f"/incidents/{number}/transition",
               json={"to": "pending", "pending_reason": "awaiting_requester"})
    clock.advance(hours=2)
    agent.post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    clock.advance(minutes=30)
    version = _incident(agent, number)["version"]
    changed = agent.patch(f"/incidents/{number}",
                          json={"impact": "high", "urgency": "high", "version": version})
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["priority"] == 1 and body["sla"]["policy"] == "P1 critical"
    # Around the clock from 09:00, 2 h paused: resolution due 15:00, response breached 09:30.
    assert _at(body["sla"]["resolution"]["due_at"]) == berlin(12, 15)
    assert body["sla"]["response"]["breached"] is True
    row = db.session.scalars(select(SlaClock).join(Ticket, Ticket.id == SlaClock.ticket_id)
                             .where(Ticket.number == number, SlaClock.metric == "resolution")).one()
    assert row.started_at == berlin(12, 9) and row.paused_seconds == 7200
    history = agent.get(f"/incidents/{number}/history").get_json()
    switches = [(e["old_value"], e["new_value"], e["actor"]) for e in history
                if e["action"] == "sla_policy"]
    assert switches == [(None, "Standard", "emma"), ("Standard", "P1 critical", "agent1")]


def test_sla_bookkeeping_leaves_version_and_updated_at_alone(world, sla, clock):
    agent = world.api(sla.agent)
    number = _raise(world, sla.employee)
    before = _incident(agent, number)
    clock.advance(days=3)
    db.session.execute(update(SlaClock).values(due_at=None))
    db.session.commit()
    assert repair_clocks() == (1, 1)
    after = _incident(agent, number)
    assert (after["version"], after["updated_at"]) == (before["version"], before["updated_at"])


def _run_cli(app, *args):
    """Run ``servicedesk ARGS`` as the command line does: its own session and commit."""
    db.session.commit()  # end this test's transaction: the command must not wait for it
    result = CliRunner().invoke(cli, list(args), obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    db.session.rollback()
    db.session.expire_all()
    return result.output


def test_sla_repair_fixes_a_tampered_clock_and_is_idempotent(app, world, sla, clock):
    agent = world.api(sla.agent)
    number = _raise(world, sla.employee)
    _raise(world, sla.employee, title="Untouched")
    clock.advance(minutes=30)
    agent.post(f"/incidents/{number}/transition",
               json={"to": "pending", "pending_reason": "awaiting_requester"})
    clock.advance(hours=1)
    agent.post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    good = _incident(agent, number)["sla"]
    ticket_id = db.session.scalar(select(Ticket.id).where(Ticket.number == number))
    db.session.execute(update(SlaClock).where(SlaClock.ticket_id == ticket_id)
                       .values(due_at=berlin(20, 9), paused_seconds=0, warning_at=None))
    db.session.execute(update(Ticket).where(Ticket.id == ticket_id).values(sla_due_at=None))
    db.session.commit()
    assert "1 of 2 open tickets changed" in _run_cli(app, "sla", "repair")
    assert _incident(agent, number)["sla"] == good
    assert db.session.get(Ticket, ticket_id).sla_due_at == berlin(12, 13)  # 3 h + 1 h paused
    assert "0 of 2 open tickets changed" in _run_cli(app, "sla", "repair")


def test_repair_removes_clocks_a_ticket_should_not_have_and_adds_missing_ones(world, sla, clock):
    agent = world.api(sla.agent)
    number = _raise(world, sla.employee)
    ticket_id = db.session.scalar(select(Ticket.id).where(Ticket.number == number))
    db.session.execute(SlaClock.__table__.delete())
    db.session.commit()
    assert repair_clocks() == (1, 1)
    db.session.expire_all()
    assert _incident(agent, number)["sla"]["resolution"] is not None
    sla_admin.update_policy(None, _policy("Standard").id, {"version": 1, "active": False})
    assert repair_clocks() == (1, 1)
    db.session.expire_all()
    body = _incident(agent, number)
    assert body["sla"] == {"policy": None, "targets": None, "response": None,
                           "resolution": None}
    assert db.session.scalar(select(SlaClock.id).where(SlaClock.ticket_id == ticket_id)) is None
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "sla_policy")
                               .order_by(AuditEntry.id)).all()
    assert [(a.old_value, a.new_value, a.actor_id) for a in audit][-1] == ("Standard", None, None)


def _policy(name: str) -> SlaPolicy:
    return db.session.scalars(select(SlaPolicy).where(SlaPolicy.name == name)).one()


def test_a_calendar_edit_then_repair_moves_due_dates(world, sla, clock):
    agent = world.api(sla.agent)
    clock.now = berlin(9, 15)
    number = _raise(world, sla.employee)
    assert _at(_incident(agent, number)["sla"]["resolution"]["due_at"]) == berlin(12, 15)
    office = db.session.scalars(select(SlaCalendar).where(SlaCalendar.name == "Business hours")).one()
    # Saturday mornings become working time, and Monday 12 January a holiday.
    week = {**office.week, "5": [["09:00", "13:00"]]}
    response = world.api(sla.admin).put(f"/sla/calendars/{office.id}", json={
        "week": week, "holidays": ["2026-01-12"], "version": office.version})
    assert response.status_code == 200, response.get_json()
    # Nothing moves by itself (the change is on the calendar, not on the ticket) ...
    assert _at(_incident(agent, number)["sla"]["resolution"]["due_at"]) == berlin(12, 15)
    assert repair_clocks() == (1, 1)
    db.session.expire_all()
    # ... until repair: 2 h Friday, 4 h Saturday, Monday off, 2 h Tuesday.
    assert _at(_incident(agent, number)["sla"]["resolution"]["due_at"]) == berlin(13, 11)
    assert repair_clocks() == (0, 1)


def test_the_clocks_are_the_same_whether_kept_up_or_recomputed(world, sla, clock):
    agent = world.api(sla.agent)
    number = _raise(world, sla.employee)
    steps = [({"to": "in_progress"}, 30), ({"to": "pending", "pending_reason": "awaiting_requester"}, 90),
             ({"to": "in_progress"}, 45), ({"to": "resolved", "resolution_code": "fixed",
                                            "resolution_notes": "ok"}, 60 * 20),
             ({"to": "in_progress"}, 10)]
    for body, minutes in steps:
        assert agent.post(f"/incidents/{number}/transition", json=body).status_code == 200
        clock.advance(minutes=minutes)
    kept = _incident(agent, number)["sla"]
    db.session.execute(SlaClock.__table__.delete())
    db.session.commit()
    repair_clocks()
    db.session.expire_all()
    assert _incident(agent, number)["sla"] == kept
