"""OLAs: a group's own targets, counted only while a ticket is with the group.

The pure part builds timelines by hand and calls ``compute_ola_clocks``. The rest drives
incidents through the REST API with time frozen (every module that reads the clock),
on SQLite and PostgreSQL like every database test: the clocks in the ticket's API
body, a renamed group, the admin API, and the sweep that tells the group's manager
once per warning and breach, however many sweeps race.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

import servicedesk.incidents.workflow  # noqa: F401  (registers the incident workflow)
from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.identity.models import Group
from servicedesk.notify.models import Notification
from servicedesk.plugins import hookimpl, plugin_manager
from servicedesk.sla import admin as sla_admin
from servicedesk.sla.calendar import BusinessCalendar
from servicedesk.sla.models import GroupOla, OlaClock, OlaGroupChange
from servicedesk.sla.ola import (
    OlaEvent,
    TicketNow,
    compute_ola_clocks,
    create_ola,
    sweep_olas,
)
from servicedesk.sla.service import repair_clocks

UTC = timezone.utc
T0 = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)  # a Monday
ALWAYS = BusinessCalendar.always()
OFFICE = BusinessCalendar("UTC", {d: [("09:00", "17:00")] for d in range(5)})
L1, L2, L3 = 1, 2, 3


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# --- pure: known answers -----------------------------------------------------------------


def ola(target=240, response=None, pause=("pending:awaiting_requester",), warning=75):
    return SimpleNamespace(target_minutes=target, response_minutes=response,
                           pause_statuses=list(pause), warning_percent=warning)


def history(*changes):
    """Events from (hours after T0, status, group, assigned[, pending reason])."""
    return [OlaEvent(T0 + hours(h), status, reason[0] if reason else None, group, assigned)
            for h, status, group, assigned, *reason in changes]


def clocks(events, group=L2, now_h=10.0, pol=None, cal=ALWAYS):
    first = events[0]
    ticket = TicketNow("incident", first.at, first.status, first.pending_reason,
                       first.group_id, first.assigned)
    return compute_ola_clocks(ticket, events, pol or ola(), group, cal, T0 + hours(now_h))


def test_the_clock_starts_when_the_group_gets_the_ticket_not_before():
    events = history((0, "new", L1, False), (3, "new", L2, False))
    resolution = clocks(events, now_h=4)["resolution"]
    assert resolution.started_at == T0 + hours(3)
    assert resolution.due_at == T0 + hours(7)            # 4 h from the hand-over
    assert resolution.warning_at == T0 + hours(6)        # 75 %
    assert resolution.met_at is None and resolution.paused_since is None


def test_a_group_the_ticket_never_reached_has_no_clock():
    events = history((0, "new", L1, False), (3, "new", L3, False))
    assert clocks(events) == {"response": None, "resolution": None}


def test_time_away_from_the_group_is_excluded_and_the_clock_resumes_on_return():
    events = history((0, "new", L1, False), (1, "new", L2, False), (2, "new", L1, False),
                     (5, "new", L2, False))
    away = clocks(events, now_h=3)["resolution"]
    assert away.paused_since == T0 + hours(2) and away.due_at is None  # unknown while away
    back = clocks(events, now_h=6)["resolution"]
    assert back.paused == hours(3) and back.paused_since is None
    assert back.due_at == T0 + hours(5 + 3)              # 1 h used before, 3 h left


def test_resolution_by_the_next_line_stops_the_clock_of_the_group_that_handed_it_on():
    events = history((0, "new", L2, False), (1, "new", L3, False),
                     (2, "resolved", L3, False))
    l2 = clocks(events, group=L2)["resolution"]
    assert l2.met_at == T0 + hours(2) and l2.paused == hours(1)  # away from 1 h to 2 h
    assert l2.breached_at is None
    l3 = clocks(events, group=L3)["resolution"]
    assert (l3.started_at, l3.met_at) == (T0 + hours(1), T0 + hours(2))


def test_a_pause_status_in_the_group_pauses_its_clock():
    events = history((0, "new", L2, False), (1, "pending", L2, True, "awaiting_requester"),
                     (3, "in_progress", L2, True))
    resolution = clocks(events, now_h=4)["resolution"]
    assert resolution.paused == hours(2)
    assert resolution.due_at == T0 + hours(6)


def test_response_is_met_when_someone_of_the_group_is_assigned():
    pol = ola(response=30)
    events = history((0, "assigned", L1, True), (2, "new", L2, False),
                     (2.25, "assigned", L2, True))
    response = clocks(events, pol=pol, now_h=3)["response"]
    assert response.started_at == T0 + hours(2)          # the L1 assignee does not count
    assert response.met_at == T0 + hours(2.25) and response.breached_at is None
    late = history((0, "new", L1, False), (2, "new", L2, False), (3, "assigned", L2, True))
    response = clocks(late, pol=pol, now_h=4)["response"]
    assert response.breached_at == T0 + hours(2.5) and response.met_at == T0 + hours(3)


def test_business_hours_of_the_olas_calendar_apply():
    # Handed over Monday 16:00: 1 business hour that day, the other 3 on Tuesday.
    events = history((0, "new", L1, False), (8, "new", L2, False))
    resolution = clocks(events, now_h=9, cal=OFFICE)["resolution"]
    assert resolution.due_at == T0 + timedelta(days=1, hours=4)  # Tuesday 12:00


# --- through the API ---------------------------------------------------------------------


class FrozenClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    frozen = FrozenClock(T0)
    for where in ("servicedesk.types.utcnow", "servicedesk.tickets.service.utcnow",
                  "servicedesk.incidents.service.utcnow", "servicedesk.tickets.models.utcnow",
                  "servicedesk.notify.service.utcnow"):
        monkeypatch.setattr(where, frozen)
    return frozen


@pytest.fixture
def always(app):
    return sla_admin.create_calendar(None, {
        "name": "24x7", "timezone": "UTC",
        "week": {str(d): [["00:00", "24:00"]] for d in range(7)}})


@pytest.fixture
def l2_ola(desk, always, clock):
    """Network Team (L2): resolve within 4 h, someone assigned within 30 min, 24x7;
    its manager is "boss"."""
    desk.l2.manager = desk.manager
    db.session.commit()
    return create_ola(None, {"group_id": desk.l2.id, "target_minutes": 240,
                             "response_minutes": 30, "calendar_id": always.id})


def _ola(api, number) -> list[dict]:
    response = api.get(f"/incidents/{number}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["ola"]


def _clock(api, number, metric="resolution", group="Network Team") -> dict:
    found = [c for c in _ola(api, number) if c["metric"] == metric and c["group"] == group]
    assert len(found) == 1, _ola(api, number)
    return found[0]


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _ok(response, status=200):
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_the_second_line_is_measured_on_its_own_time(world, desk, l2_ola, clock):
    staff = world.api(desk.admin)
    number = world.incident(desk.employee)["number"]
    assert _ola(staff, number) == []                     # with L1, which has no OLA
    clock.advance(hours=2)
    version = _ok(staff.post(f"/incidents/{number}/escalate", json={}))["version"]
    resolution = _clock(staff, number)
    assert _at(resolution["due_at"]) == T0 + hours(2 + 4)  # not T0 + 4 h
    assert resolution["elapsed_percent"] == 0.0 and resolution["paused"] is False
    assert _at(_clock(staff, number, "response")["due_at"]) == T0 + hours(2.5)

    clock.advance(minutes=10)
    version = _ok(staff.patch(f"/incidents/{number}", json={
        "assignee": desk.l2_agent.username, "version": version}))["version"]
    response = _clock(staff, number, "response")
    assert _at(response["met_at"]) == clock.now and response["breached"] is False

    clock.advance(hours=1)                               # handed back to L1 for 3 h
    version = _ok(staff.patch(f"/incidents/{number}", json={
        "group": desk.l1.name, "version": version}))["version"]
    away = _clock(staff, number)
    assert away["paused"] is True and away["due_at"] is None
    clock.advance(hours=3)
    version = _ok(staff.patch(f"/incidents/{number}", json={
        "group": desk.l2.name, "version": version}))["version"]
    back = _clock(staff, number)
    assert back["paused"] is False
    assert _at(back["due_at"]) == T0 + hours(2 + 4 + 3)  # the 3 h away added
    clock.advance(minutes=30)
    _ok(staff.post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Done."}))
    done = _clock(staff, number)
    assert _at(done["met_at"]) == clock.now and done["breached"] is False
    assert done["elapsed_percent"] == round(100 * 100 / 240, 1)  # 70 + 30 of 240 min
    # Derived data: recomputing from history gives the same rows.
    before = _ola(staff, number)
    repair_clocks()
    assert _ola(staff, number) == before


def test_requesters_do_not_see_olas_and_the_list_shows_what_the_detail_shows(
        world, desk, l2_ola, clock):
    number = world.incident(desk.employee)["number"]
    staff = world.api(desk.agent)
    _ok(staff.post(f"/incidents/{number}/escalate", json={}))
    assert _ola(world.api(desk.employee), number) == []
    admin = world.api(desk.admin)
    detail = _ola(admin, number)
    assert [c["metric"] for c in detail] == ["resolution", "response"]
    listed = _ok(admin.get("/incidents?limit=50"))["items"]
    assert [i["ola"] for i in listed if i["number"] == number] == [detail]
    mine = _ok(world.api(desk.employee).get("/incidents"))["items"]
    assert [i["ola"] for i in mine] == [[]]


def test_a_renamed_group_keeps_its_clock_and_its_old_name_means_nothing(
        world, desk, l2_ola, always, clock):
    staff = world.api(desk.admin)
    number = world.incident(desk.employee)["number"]
    clock.advance(hours=1)
    _ok(staff.post(f"/incidents/{number}/escalate", json={}))
    before = _clock(staff, number)
    # Renamed (by the directory, say), and a new group given the old name, with an OLA.
    db.session.execute(update(Group).where(Group.id == desk.l2.id).values(name="Network Ops"))
    db.session.commit()
    newcomer = identity.create_group(None, "Network Team", 2)
    create_ola(None, {"group_id": newcomer.id, "target_minutes": 60,
                      "calendar_id": always.id})
    clock.advance(minutes=5)
    repair_clocks()
    clocks = _ola(staff, number)
    assert {c["group"] for c in clocks} == {"Network Ops"}
    assert _clock(staff, number, group="Network Ops")["due_at"] == before["due_at"]
    # Entries older than the id table are read by name: right while names are unchanged.
    db.session.execute(update(Group).where(Group.id == newcomer.id).values(name="Newcomers"))
    db.session.execute(update(Group).where(Group.id == desk.l2.id).values(name="Network Team"))
    db.session.execute(delete(OlaGroupChange))
    db.session.commit()
    repair_clocks()
    assert _clock(staff, number)["due_at"] == before["due_at"]


def test_a_deactivated_ola_drops_its_clocks(world, desk, l2_ola, clock):
    staff = world.api(desk.admin)
    number = world.incident(desk.employee)["number"]
    _ok(staff.post(f"/incidents/{number}/escalate", json={}))
    assert len(_ola(staff, number)) == 2
    _ok(staff.put(f"/sla/olas/{l2_ola.id}", json={"active": False, "version": 1}))
    repair_clocks()
    assert _ola(staff, number) == []


# --- the admin API -------------------------------------------------------------------------


def test_an_admin_gives_a_group_its_ola_and_staff_read_it(world, desk, always):
    admin = world.api(desk.admin)
    body = _ok(admin.post("/sla/olas", json={
        "group_id": desk.l2.id, "target_minutes": 480, "calendar_id": always.id}), 201)
    assert body["group"] == "Network Team" and body["calendar"] == "24x7"
    assert body["response_minutes"] is None and body["warning_percent"] == 75
    assert body["pause_statuses"] == ["pending:awaiting_requester"] and body["active"] is True
    assert body["version"] == 1
    assert world.api(desk.agent).get(f"/sla/olas/{body['id']}").get_json() == body
    assert [o["group"] for o in _ok(world.api(desk.manager).get("/sla/olas"))] == ["Network Team"]


@pytest.mark.parametrize("change, field, status", [
    ({"target_minutes": 0}, "target_minutes", 422),
    ({"target_minutes": -5}, "target_minutes", 422),
    ({"target_minutes": None}, "target_minutes", 422),
    ({"response_minutes": 0}, "response_minutes", 422),
    ({"group_id": 999}, "group_id", 422),
    ({"calendar_id": 999}, "calendar_id", 422),
    ({"pause_statuses": ["resolved"]}, "pause_statuses", 422),
    ({"pause_statuses": ["pending:on_holiday"]}, "pause_statuses", 422),
    ({"warning_percent": 100}, "warning_percent", 422),
    ({"group_id": "x"}, "group_id", 422),
])
def test_an_invalid_ola_is_refused_naming_the_field_and_changes_nothing(
        world, desk, always, change, field, status):
    body = {"group_id": desk.l2.id, "target_minutes": 60, "calendar_id": always.id, **change}
    response = world.api(desk.admin).post("/sla/olas", json=body)
    assert response.status_code == status, response.get_json()
    assert set(response.get_json()["error"]["fields"]) == {field}
    assert db.session.scalar(select(func.count()).select_from(GroupOla)) == 0


def test_one_ola_per_group_writes_by_admins_only_and_the_version_guards_updates(
        world, desk, always):
    admin = world.api(desk.admin)
    created = _ok(admin.post("/sla/olas", json={
        "group_id": desk.l2.id, "target_minutes": 60, "calendar_id": always.id}), 201)
    twice = admin.post("/sla/olas", json={"group_id": desk.l2.id, "target_minutes": 90,
                                          "calendar_id": always.id})
    assert twice.status_code == 409 and set(twice.get_json()["error"]["fields"]) == {"group_id"}
    url = f"/sla/olas/{created['id']}"
    for user in (desk.agent, desk.manager):
        assert world.api(user).put(url, json={"target_minutes": 1, "version": 1}).status_code == 403
        assert world.api(user).post("/sla/olas", json={
            "group_id": desk.l3.id, "target_minutes": 60,
            "calendar_id": always.id}).status_code == 403
    assert world.api(desk.employee).get("/sla/olas").status_code == 403
    missing = admin.put(url, json={"target_minutes": 90})
    assert missing.status_code == 422 and set(missing.get_json()["error"]["fields"]) == {"version"}
    assert _ok(admin.put(url, json={"target_minutes": 90, "version": 1}))["version"] == 2
    stale = admin.put(url, json={"target_minutes": 120, "version": 1})
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"
    moved = admin.put(url, json={"group_id": desk.l3.id, "version": 2})
    assert _ok(moved)["group"] == "Engineering"
    assert admin.get("/sla/olas/99999999999").status_code == 404
    assert _ok(admin.get(url))["target_minutes"] == 90


# --- the sweep: told once ------------------------------------------------------------------


class SlaEvents:
    def __init__(self):
        self.calls = []

    @hookimpl
    def servicedesk_sla_event(self, ticket, metric, event, step):
        self.calls.append((ticket.number, metric, event, step))


@pytest.fixture
def hook(app):
    spy = SlaEvents()
    plugin_manager().register(spy, name="ola-spy")
    yield spy
    plugin_manager().unregister(name="ola-spy")


def _notifications() -> list[tuple[str, int, str]]:
    db.session.rollback()
    # SLA notifications only: a resolution also mails its satisfaction survey (csat).
    rows = db.session.execute(select(Notification.event, Notification.recipient_id,
                                     Notification.dedupe_key)
                              .where(Notification.event.like("sla.%"))
                              .order_by(Notification.id)).all()
    db.session.rollback()
    return [tuple(r) for r in rows]


@pytest.fixture
def handed_over(world, desk, always, clock):
    """An incident with L2 since T0 + 1 h; L2's OLA: 60 min, warning at 50 %."""
    desk.l2.manager = desk.manager
    db.session.commit()
    create_ola(None, {"group_id": desk.l2.id, "target_minutes": 60, "warning_percent": 50,
                      "calendar_id": always.id})
    number = world.incident(desk.employee)["number"]
    clock.advance(hours=1)
    _ok(world.api(desk.agent).post(f"/incidents/{number}/escalate", json={}))
    db.session.rollback()
    return number


def test_the_groups_manager_is_told_once_of_the_warning_and_once_of_the_breach(
        desk, handed_over, clock, hook):
    metric = f"ola:{desk.l2.id}"
    clock.advance(minutes=29)
    assert sweep_olas() == 0
    clock.advance(minutes=1)
    assert sweep_olas() == 1
    assert sweep_olas() == 0
    ticket_id = db.session.scalars(select(OlaClock.ticket_id)).one()
    assert _notifications() == [("sla.warning", desk.manager.id,
                                 f"ola-{ticket_id}-{desk.l2.id}-resolution-warning")]
    assert hook.calls == [(handed_over, metric, "warning", None)]
    clock.advance(minutes=30)
    assert sweep_olas() == 1
    assert sweep_olas() == 0
    assert [n[0] for n in _notifications()] == ["sla.warning", "sla.breach"]
    assert hook.calls[1:] == [(handed_over, metric, "breach", None)]
    row = db.session.scalars(select(OlaClock)).one()
    assert row.breached_at == row.due_at == T0 + hours(2)
    # Recomputing the clock keeps the record of what was told.
    repair_clocks()
    assert sweep_olas() == 0
    assert db.session.scalars(select(OlaClock)).one().breach_notified_at == T0 + hours(2)


def test_racing_sweeps_tell_once(app, desk, handed_over, clock, hook):
    clock.advance(hours=2)                               # warning and breach both passed
    db.session.rollback()
    start = threading.Barrier(3)
    results, errors = [], []

    def sweep():
        with app.app_context():
            try:
                start.wait(timeout=10)
                results.append(sweep_olas())
            except Exception as exc:  # reported below, not lost in the thread
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and sorted(results) == [0, 0, 1]
    # Past its due instant, the warning is moot: only the breach is told.
    assert [n[0] for n in _notifications()] == ["sla.breach"]
    assert [c[2] for c in hook.calls] == ["breach"]


def test_a_breach_already_over_when_the_sweep_comes_is_still_told(
        world, desk, handed_over, clock, hook):
    clock.advance(hours=2)
    _ok(world.api(desk.admin).post(f"/incidents/{handed_over}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Late."}))
    assert sweep_olas() == 1
    assert [n[0] for n in _notifications()] == ["sla.breach"]


def test_a_clock_away_from_its_group_neither_warns_nor_breaches(
        world, desk, handed_over, clock, hook):
    clock.advance(minutes=10)
    _ok(world.api(desk.admin).patch(f"/incidents/{handed_over}", json={
        "group": desk.l1.name, "version": _ok(world.api(desk.admin).get(
            f"/incidents/{handed_over}"))["version"]}))
    clock.advance(hours=5)
    assert sweep_olas() == 0
    assert _notifications() == [] and hook.calls == []


def test_a_group_without_a_manager_still_fires_the_hook(desk, handed_over, clock, hook):
    desk.l2.manager = None
    db.session.commit()
    clock.advance(hours=2)
    assert sweep_olas() == 1
    assert _notifications() == []
    assert [c[2] for c in hook.calls] == ["breach"]


OLA_FIELDS = ["group_id", "target_minutes", "response_minutes", "calendar_id",
              "pause_statuses", "warning_percent", "active", "version", "x"]
ODD = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
                st.floats(allow_nan=False), st.text(max_size=20),
                st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=3),
                st.sampled_from([0, 1, 2**31, "pending", "resolved", "\x00"]))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(ODD, st.dictionaries(st.sampled_from(OLA_FIELDS), ODD, max_size=6)))
def test_no_body_makes_the_ola_api_fail(world, desk, always, body):
    admin = world.api(desk.admin)
    for response in (admin.post("/sla/olas", json=body), admin.put("/sla/olas/1", json=body)):
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code >= 400:
            assert set(response.get_json()["error"]) == {"code", "message", "fields"}
    db.session.rollback()


def test_the_periodic_sla_sweep_tells_the_olas_too(desk, handed_over, clock):
    """The job the scheduler (or the in-process timer) runs every minute covers OLAs:
    no separate job to forget."""
    from servicedesk.sla.jobs import sweep

    clock.advance(minutes=61)
    assert sweep() >= 1
    assert [n[0] for n in _notifications()] == ["sla.breach"]
    assert sweep() == 0
