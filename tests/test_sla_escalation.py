"""SLA escalation steps: when they fire (and not before), exactly once, what each action
does, working-hours holds, the policy API's step validation and the demo's defaults.

"Now" is frozen by passing it to the sweep, never by sleeping: tickets are back-dated to
a fixed Monday morning, so every instant below is known. Every test runs on SQLite and
PostgreSQL; tests/test_sla_workers.py runs the same engine on real RQ workers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select, update

from servicedesk import jobs
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.notify.models import Notification
from servicedesk.plugins import hookimpl
from servicedesk.sla import admin as sla_admin
from servicedesk.sla.escalation import due_clocks, fire_due, sweep
from servicedesk.sla.models import SlaCalendar, SlaClock, SlaEscalation, SlaPolicy
from servicedesk.sla.service import refresh_clocks
from servicedesk.tickets.models import AuditEntry, Ticket
from servicedesk.types import utcnow

UTC = timezone.utc
# Monday 12 January 2026, 08:00 UTC = 09:00 in Berlin (CET): the office day starts.
BASE = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
OFFICE_WEEK = {str(d): [["09:00", "17:00"]] for d in range(5)}
ALWAYS = {str(d): [["00:00", "24:00"]] for d in range(7)}


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def calendars(app):
    always = sla_admin.create_calendar(None, {"name": "24x7", "timezone": "UTC", "week": ALWAYS})
    office = sla_admin.create_calendar(None, {"name": "Office", "timezone": "Europe/Berlin",
                                              "week": OFFICE_WEEK})
    return {"always": always, "office": office}


@pytest.fixture
def managed_desk(desk):
    """The desk with a manager for the first-line group."""
    desk.l1.manager = desk.manager
    db.session.commit()
    return desk


def make_policy(calendars, steps, *, response=60, resolution=240, warning=50, calendar="always",
                **rules) -> SlaPolicy:
    """A policy on the 24x7 calendar: response due 1 h, resolution 4 h after creation,
    warnings at half-time (30 min, 2 h)."""
    return sla_admin.create_policy(None, {
        "name": rules.pop("name", "Escalating"), "calendar_id": calendars[calendar].id,
        "response_minutes": response, "resolution_minutes": resolution,
        "warning_percent": warning, "steps": steps, **rules})


def step(key, metric, trigger, actions, **extra) -> dict:
    return {"key": key, "metric": metric, "trigger": trigger, "actions": actions, **extra}


def ticket_created_at(world, desk, created_at=BASE, **fields) -> Ticket:
    """An incident raised by the employee, back-dated to ``created_at`` (clocks recomputed)."""
    number = world.incident(desk.employee, **fields)["number"]
    ticket = db.session.scalars(select(Ticket).where(Ticket.number == number)).one()
    table = Ticket.__table__
    db.session.execute(update(table).where(table.c.id == ticket.id).values(created_at=created_at))
    db.session.commit()
    db.session.refresh(ticket)
    refresh_clocks(ticket, None)
    db.session.commit()
    return ticket


def assigned_ticket(world, desk, **fields) -> Ticket:
    ticket = ticket_created_at(world, desk, **fields)
    response = world.api(desk.agent).patch(f"/incidents/{ticket.number}", json={
        "assignee": desk.agent.username, "version": ticket.version})
    assert response.status_code == 200, response.get_json()
    db.session.refresh(ticket)
    return ticket


def fired(ticket: Ticket) -> list[tuple[str, str]]:
    db.session.rollback()
    return sorted((metric, key) for metric, key in db.session.execute(
        select(SlaEscalation.metric, SlaEscalation.step_key)
        .where(SlaEscalation.ticket_id == ticket.id)))


def clock(ticket: Ticket, metric: str) -> SlaClock:
    db.session.rollback()
    return db.session.scalars(select(SlaClock).where(
        SlaClock.ticket_id == ticket.id, SlaClock.metric == metric)).one()


def fresh(ticket: Ticket) -> Ticket:
    db.session.rollback()
    return db.session.scalars(select(Ticket).where(Ticket.id == ticket.id)
                              .execution_options(populate_existing=True)).one()


def audit(ticket: Ticket, field: str) -> list[AuditEntry]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.ticket_id == ticket.id, AuditEntry.field == field).order_by(AuditEntry.id)))


def outbox(ticket: Ticket) -> list[Notification]:
    db.session.rollback()
    return list(db.session.scalars(select(Notification).where(
        Notification.ticket_id == ticket.id, Notification.event.like("sla.%"))
        .order_by(Notification.id)))


def count(model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


# --- when steps fire ----------------------------------------------------------------------------


def test_steps_fire_at_warning_breach_and_breach_plus_delay_and_not_before(world, desk, calendars):
    make_policy(calendars, [
        step("response-warning", "response", "warning", ["raise_level"], level=1),
        step("response-breach", "response", "breach", ["raise_level"], level=2),
        step("response-late", "response", "breach", ["raise_level"], level=3, delay_minutes=15),
    ])
    ticket = ticket_created_at(world, desk)
    warning, due = BASE + timedelta(minutes=30), BASE + timedelta(hours=1)
    assert clock(ticket, "response").next_step_at == warning  # what the sweep reads

    assert sweep(now=warning - timedelta(microseconds=1)) == 0
    assert fired(ticket) == [] and fresh(ticket).escalation_level == 0

    assert sweep(now=warning) == 2  # the clock's warning event and the warning step
    assert fired(ticket) == [("response", "_warning"), ("response", "response-warning")]
    assert fresh(ticket).escalation_level == 1
    assert clock(ticket, "response").next_step_at == due

    assert sweep(now=due - timedelta(seconds=1)) == 0
    assert sweep(now=due) == 2
    assert ("response", "_breach") in fired(ticket) and ("response", "response-breach") in fired(ticket)
    assert fresh(ticket).escalation_level == 2
    assert clock(ticket, "response").next_step_at == due + timedelta(minutes=15)

    assert sweep(now=due + timedelta(minutes=14, seconds=59)) == 0
    assert sweep(now=due + timedelta(minutes=15)) == 1
    assert fresh(ticket).escalation_level == 3
    assert [row for row in fired(ticket) if row[0] == "response"] == [
        ("response", "_breach"), ("response", "_warning"), ("response", "response-breach"),
        ("response", "response-late"), ("response", "response-warning")]
    # The response clock has nothing left; the resolution clock's warning is next.
    assert clock(ticket, "response").next_step_at is None
    assert clock(ticket, "resolution").next_step_at == BASE + timedelta(hours=2)


def test_each_fired_row_records_its_due_instant_and_policy(world, desk, calendars):
    policy = make_policy(calendars, [step("late", "resolution", "breach", ["raise_level"],
                                          level=1, delay_minutes=30)])
    ticket = ticket_created_at(world, desk)
    sweep(now=BASE + timedelta(hours=5))
    db.session.rollback()
    rows = {r.step_key: r for r in db.session.scalars(select(SlaEscalation).where(
        SlaEscalation.ticket_id == ticket.id, SlaEscalation.metric == "resolution"))}
    assert rows["_warning"].due_at == BASE + timedelta(hours=2)
    assert rows["_breach"].due_at == BASE + timedelta(hours=4)
    assert rows["late"].due_at == BASE + timedelta(hours=4, minutes=30)
    assert {r.policy_id for r in rows.values()} == {policy.id}


def test_a_catching_up_sweep_fires_every_due_step_of_both_clocks_at_once(world, desk, calendars):
    make_policy(calendars, [step("r", "response", "breach", ["raise_level"], level=1),
                            step("s", "resolution", "breach", ["raise_level"], level=3)])
    ticket = ticket_created_at(world, desk)
    assert sweep(now=BASE + timedelta(days=1)) == 6
    assert len(fired(ticket)) == 6 and fresh(ticket).escalation_level == 3


def test_a_met_clock_fires_no_more_steps(world, desk, calendars):
    make_policy(calendars, [step("response-breach", "response", "breach", ["raise_level"],
                                 level=3)])
    ticket = ticket_created_at(world, desk)
    assert sweep(now=BASE + timedelta(minutes=30)) == 1  # the response warning event
    reply = world.api(desk.agent).post(f"/incidents/{ticket.number}/comments",
                                       json={"body": "Looking into it.", "public": True})
    assert reply.status_code == 201
    assert clock(ticket, "response").next_step_at is None  # met: nothing pending
    assert sweep(now=BASE + timedelta(hours=3)) == 1  # only the resolution warning
    assert fired(ticket) == [("resolution", "_warning"), ("response", "_warning")]
    assert fresh(ticket).escalation_level == 0


def test_a_resolved_ticket_fires_nothing(world, desk, calendars):
    make_policy(calendars, [step("resolution-breach", "resolution", "breach", ["raise_level"],
                                 level=3)])
    ticket = ticket_created_at(world, desk)
    response = world.api(desk.agent).post(f"/incidents/{ticket.number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Done."})
    assert response.status_code == 200
    assert sweep(now=BASE + timedelta(days=2)) == 0
    assert fired(ticket) == []


def test_running_the_sweep_again_fires_nothing_new(world, managed_desk, calendars):
    desk = managed_desk
    make_policy(calendars, [
        step("breach", "resolution", "breach", ["notify_assignee", "notify_group_manager",
                                                "raise_level"], level=3, working_hours=False)])
    tickets = [assigned_ticket(world, desk) for _ in range(3)]
    later = BASE + timedelta(hours=5)
    assert sweep(now=later) == 3 * 5  # per ticket: 2 warnings, 2 breaches, the step
    rows, notes, entries = count(SlaEscalation), count(Notification), count(AuditEntry)
    assert sweep(now=later) == 0
    assert sweep(now=later + timedelta(days=1)) == 0
    assert (count(SlaEscalation), count(Notification), count(AuditEntry)) == (rows, notes, entries)
    for ticket in tickets:
        assert fire_due(ticket.id, now=later) == 0
    assert count(SlaEscalation) == rows


def test_the_sweep_reads_due_clocks_from_its_partial_index(world, desk, calendars, app):
    make_policy(calendars, [])
    ticket_created_at(world, desk)
    captured = []

    def listener(_conn, _cursor, statement, parameters, _context, _many):
        if "FROM sla_clocks" in statement and "next_step_at" in statement:
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        due_clocks(BASE + timedelta(hours=1), (BASE, 1), 500)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    db.session.rollback()
    statement, parameters = captured[0]
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                         parameters)]
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: force the choice
            plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
    assert any("ix_sla_clocks_next_step" in line for line in plan), plan


# --- what each action does ------------------------------------------------------------------------


def test_raise_level_is_audited_by_the_system_and_does_not_make_an_agents_save_stale(
        world, desk, calendars):
    make_policy(calendars, [step("warn", "resolution", "warning", ["raise_level"], level=2)])
    ticket = assigned_ticket(world, desk)
    version = ticket.version
    sweep(now=BASE + timedelta(hours=2))
    after = fresh(ticket)
    assert after.escalation_level == 2 and after.version == version
    entry = audit(ticket, "escalation_level")[-1]
    assert (entry.old_value, entry.new_value, entry.actor_id) == ("0", "2", None)
    # The agent saves with the version read before the escalation: not stale.
    response = world.api(desk.agent).patch(f"/incidents/{ticket.number}", json={
        "title": "Printer jam, floor 2", "version": version})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["escalation_level"] == 2


def test_raise_level_never_lowers_the_level(world, desk, calendars):
    make_policy(calendars, [step("high", "response", "warning", ["raise_level"], level=3),
                            step("low", "response", "breach", ["raise_level"], level=1)])
    ticket = ticket_created_at(world, desk)
    sweep(now=BASE + timedelta(hours=1))
    assert fresh(ticket).escalation_level == 3
    assert [(e.old_value, e.new_value) for e in audit(ticket, "escalation_level")] == [("0", "3")]


def test_next_line_moves_the_ticket_to_the_next_line_and_clears_the_assignee(
        world, desk, calendars):
    world.group("Access Team", 2)  # sorts before "Network Team": the first L2 group by name
    make_policy(calendars, [step("up", "response", "breach", ["next_line"])])
    ticket = assigned_ticket(world, desk)
    assert (ticket.group.name, ticket.status) == ("Service Desk", "assigned")
    version = ticket.version
    sweep(now=BASE + timedelta(hours=1))
    after = fresh(ticket)
    assert (after.group.name, after.support_line, after.assignee_id) == ("Access Team", 2, None)
    assert after.status == "new" and after.escalation_count == 1
    assert {(e.field, e.old_value, e.new_value, e.actor_id) for e in
            audit(ticket, "group") + audit(ticket, "assignee") + audit(ticket, "status")
            if e.action in ("escalated", "transition") and e.actor_id is None} == {
        ("group", "Service Desk", "Access Team", None),
        ("assignee", desk.agent.username, None, None),
        ("status", "assigned", "new", None)}
    # It changed what staff edit: a save with the version read before is refused (the
    # agent no longer sees it at all: it left their group).
    assert world.api(desk.agent).get(f"/incidents/{ticket.number}").status_code == 404
    stale = world.api(desk.admin).patch(f"/incidents/{ticket.number}", json={
        "title": "x", "version": version})
    assert stale.status_code == 409


def test_next_line_uses_the_steps_group_and_does_nothing_past_the_last_line(
        world, desk, calendars):
    make_policy(calendars, [step("up", "response", "breach", ["next_line"],
                                 group_id=desk.l3.id)])
    ticket = ticket_created_at(world, desk)
    sweep(now=BASE + timedelta(hours=1))
    assert (fresh(ticket).group.name, fresh(ticket).support_line) == ("Engineering", 3)

    top = ticket_created_at(world, desk)
    moved = world.api(desk.admin).patch(f"/incidents/{top.number}", json={
        "group": desk.l3.name, "version": fresh(top).version})
    assert moved.status_code == 200, moved.get_json()
    sweep(now=BASE + timedelta(hours=1))
    after = fresh(top)
    assert (after.group.name, after.escalation_count) == ("Engineering", 0)
    assert ("response", "up") in fired(top)  # it fired; there was just nowhere to go


def test_raise_priority_makes_it_one_step_more_urgent_and_re_evaluates_the_clocks(
        world, desk, calendars):
    make_policy(calendars, [], name="Urgent", priorities=[2], response=15, resolution=60,
                position=0)
    make_policy(calendars, [step("push", "response", "warning", ["raise_priority"])],
                position=1)
    ticket = ticket_created_at(world, desk, impact="medium", urgency="medium")
    assert ticket.priority == 3
    started = clock(ticket, "resolution").started_at
    sweep(now=BASE + timedelta(minutes=30))
    after = fresh(ticket)
    assert after.priority == 2
    entry = audit(ticket, "priority")[-1]
    assert (entry.old_value, entry.new_value, entry.actor_id, entry.action) == ("3", "2", None,
                                                                               "escalated")
    # Re-evaluated from the ticket's start under the policy P2 now matches: nothing restarted.
    assert [e.new_value for e in audit(ticket, "sla_policy")][-1] == "Urgent"
    resolution = clock(ticket, "resolution")
    assert resolution.started_at == started == BASE
    assert resolution.due_at == BASE + timedelta(hours=1)
    # Under the new targets the response is long overdue: its breach comes next, at once.
    assert clock(ticket, "response").next_step_at == BASE + timedelta(minutes=15)


def test_raise_priority_stops_at_p1(world, desk, calendars):
    make_policy(calendars, [step("push", "response", "warning", ["raise_priority"])])
    ticket = ticket_created_at(world, desk, impact="high", urgency="high")
    assert ticket.priority == 1
    sweep(now=BASE + timedelta(hours=1))
    assert fresh(ticket).priority == 1 and audit(ticket, "priority") == []


# --- notifications ----------------------------------------------------------------------------------


def test_notify_actions_queue_one_outbox_row_per_recipient(world, managed_desk, calendars):
    desk = managed_desk
    make_policy(calendars, [
        step("warn", "resolution", "warning", ["notify_assignee"], working_hours=False),
        step("breach", "resolution", "breach",
             ["notify_assignee", "notify_group_manager", "notify_requester"],
             working_hours=False)])
    ticket = assigned_ticket(world, desk)
    sweep(now=BASE + timedelta(hours=2))
    rows = outbox(ticket)
    assert [(n.event, n.recipient_id, n.dedupe_key) for n in rows] == [
        ("sla.warning", desk.agent.id, f"sla-{ticket.id}-resolution-warn-{desk.agent.id}")]
    assert rows[0].deliver_after is None and rows[0].address == desk.agent.email
    assert ticket.number in rows[0].subject

    sweep(now=BASE + timedelta(hours=4))
    breach = [n for n in outbox(ticket) if n.event == "sla.breach"]
    assert sorted(n.recipient_id for n in breach) == sorted(
        [desk.agent.id, desk.manager.id, desk.employee.id])
    assert len({n.dedupe_key for n in breach}) == 3


def test_without_an_assignee_the_groups_manager_hears_of_it_once(world, managed_desk, calendars):
    desk = managed_desk
    make_policy(calendars, [step("breach", "response", "breach",
                                 ["notify_assignee", "notify_group_manager"],
                                 working_hours=False)])
    ticket = ticket_created_at(world, desk)
    assert ticket.assignee_id is None and ticket.group_id == desk.l1.id
    sweep(now=BASE + timedelta(hours=1))
    assert [n.recipient_id for n in outbox(ticket)] == [desk.manager.id]


def test_notifications_wait_for_the_recipients_working_hours(world, managed_desk, calendars):
    desk = managed_desk
    # The admin says the agent works Mon-Fri 09-17 Berlin.
    answer = world.api(desk.admin).patch(f"/users/{desk.agent.username}",
                                         json={"working_hours": "Office"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["working_hours"] == "Office"
    db.session.rollback()
    make_policy(calendars, [
        step("held", "response", "breach", ["notify_assignee"]),
        step("now", "resolution", "breach", ["notify_assignee"], working_hours=False),
        step("manager", "resolution", "breach", ["notify_group_manager"])])
    # Raised Saturday 02:00 UTC: the response breaches at 03:00 on a Saturday night.
    saturday = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
    ticket = ticket_created_at(world, desk, created_at=saturday)
    world.api(desk.agent).patch(f"/incidents/{ticket.number}", json={
        "assignee": desk.agent.username, "version": fresh(ticket).version})
    sweep(now=saturday + timedelta(hours=1))
    [held] = outbox(ticket)
    # Held until Monday 09:00 in Berlin, 08:00 UTC; not sent at 3 a.m.
    assert held.deliver_after == BASE
    sweep(now=saturday + timedelta(hours=4))
    by_key = {n.dedupe_key.split("-")[3]: n for n in outbox(ticket)}
    assert by_key["now"].deliver_after is None  # the step says: do not wait
    # The manager has no calendar of their own: the policy's (24x7) says now.
    assert by_key["manager"].deliver_after is None


def test_working_hours_name_a_calendar_that_exists_and_only_admins_set_them(world, desk, calendars):
    api = world.api(desk.admin)
    answer = api.patch(f"/users/{desk.agent.username}", json={"working_hours": "Night shift"})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["fields"] == {"working_hours": ["Unknown calendar."]}
    assert world.api(desk.agent).patch(f"/users/{desk.agent.username}",
                                       json={"working_hours": "Office"}).status_code == 403
    db.session.rollback()
    assert db.session.get(User, desk.agent.id).calendar_id is None
    assert api.patch(f"/users/{desk.agent.username}",
                     json={"working_hours": "Office"}).get_json()["working_hours"] == "Office"
    assert api.patch(f"/users/{desk.agent.username}",
                     json={"working_hours": None}).get_json()["working_hours"] is None


# --- the hook ------------------------------------------------------------------------------------------


class SlaEventRecorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def servicedesk_sla_event(self, ticket, metric, event, step):
        self.events.append((ticket.number, metric, event, step["key"] if step else None))


@pytest.fixture
def recorder(app):
    plugin = SlaEventRecorder()
    manager = app.extensions["servicedesk"]["plugins"]
    manager.register(plugin, name="test-sla-recorder")
    yield plugin
    manager.unregister(plugin)


def test_the_sla_event_hook_tells_warning_breach_and_every_step_once(world, desk, calendars,
                                                                     recorder):
    make_policy(calendars, [step("warn", "response", "warning", ["raise_level"], level=1),
                            step("late", "response", "breach", ["raise_level"], level=2,
                                 delay_minutes=10)])
    ticket = ticket_created_at(world, desk)
    sweep(now=BASE + timedelta(minutes=30))
    assert recorder.events == [(ticket.number, "response", "warning", None),
                               (ticket.number, "response", "step", "warn")]
    sweep(now=BASE + timedelta(minutes=70))
    sweep(now=BASE + timedelta(minutes=70))
    assert recorder.events[2:] == [(ticket.number, "response", "breach", None),
                                   (ticket.number, "response", "step", "late")]


# --- in-process (no Redis) --------------------------------------------------------------------------


def test_without_redis_the_in_process_timer_sweeps(world, desk, calendars, app):
    assert app.config["SERVICEDESK_REDIS_URL"] is None
    make_policy(calendars, [step("warn", "response", "warning", ["raise_level"], level=1)])
    ticket = ticket_created_at(world, desk)  # back-dated: everything is due by now
    timer = jobs.InProcessJobs(app, tick=3600)

    def run_due(now):
        db.session.rollback()  # on SQLite our open read would hold the write lock
        return timer.run_due(now=now)

    assert "sla-sweep" in run_due(1_000_000.0)
    assert fresh(ticket).escalation_level == 1
    assert len(fired(ticket)) == 5
    # Its interval in-process is 15 s (no enqueue_at without Redis).
    assert "sla-sweep" not in run_due(1_000_014.0)
    assert "sla-sweep" in run_due(1_000_015.0)


def test_a_fire_due_job_also_fires_the_other_tickets_due_by_then(world, desk, calendars):
    from servicedesk.sla import jobs as sla_jobs

    make_policy(calendars, [step("warn", "response", "warning", ["raise_level"], level=1)])
    first, second = ticket_created_at(world, desk), ticket_created_at(world, desk)
    later = ticket_created_at(world, desk, created_at=utcnow() + timedelta(hours=1))
    db.session.rollback()
    # Both back-dated tickets are overdue: the job for the first fires the second too.
    assert sla_jobs.fire_due(first.id) == 10
    assert len(fired(first)) == len(fired(second)) == 5
    assert fired(later) == []  # not due yet


# --- policy steps through the API ---------------------------------------------------------------------


@pytest.fixture
def admin_api(world, desk):
    return world.api(desk.admin)


VALID = {"key": "resolution-breach", "metric": "resolution", "trigger": "breach",
         "actions": ["notify_group_manager", "raise_level"], "level": 3}


def test_steps_are_written_validated_and_read_back_normalised(admin_api, calendars, desk):
    response = admin_api.post("/sla/policies", json={
        "name": "Standard", "calendar_id": calendars["office"].id, "response_minutes": 180,
        "resolution_minutes": 480, "steps": [
            VALID,
            {"key": "response-breach", "metric": "response", "trigger": "breach",
             "actions": ["notify_assignee", "next_line"], "group_id": desk.l2.id,
             "delay_minutes": 30, "working_hours": False},
            {"key": "resolution-warning", "metric": "resolution", "trigger": "warning",
             "actions": ["notify_assignee"]}]})
    assert response.status_code == 201, response.get_json()
    steps = response.get_json()["steps"]
    assert steps == [
        {"key": "resolution-breach", "metric": "resolution", "trigger": "breach",
         "delay_minutes": 0, "actions": ["notify_group_manager", "raise_level"], "level": 3,
         "working_hours": True},
        {"key": "response-breach", "metric": "response", "trigger": "breach",
         "delay_minutes": 30, "actions": ["notify_assignee", "next_line"],
         "group_id": desk.l2.id, "working_hours": False},
        {"key": "resolution-warning", "metric": "resolution", "trigger": "warning",
         "actions": ["notify_assignee"], "working_hours": True}]
    url = f"/sla/policies/{response.get_json()['id']}"
    assert admin_api.get(url).get_json()["steps"] == steps
    updated = admin_api.put(url, json={"steps": steps[:1], "version": 1})
    assert updated.status_code == 200 and updated.get_json()["steps"] == steps[:1]


def _bad(**change) -> dict:
    return {**VALID, **change}


@pytest.mark.parametrize("steps, field, reason", [
    ([{k: v for k, v in VALID.items() if k != "key"}], "steps.0.key", "Missing"),
    ([_bad(key="Resolution Breach")], "steps.0.key", "lower-case"),
    ([_bad(key="x" * 41)], "steps.0.key", "1 to 40"),
    ([VALID, _bad(actions=["notify_assignee"])], "steps.1.key", "unique"),
    ([_bad(metric="ola")], "steps.0.metric", "response, resolution"),
    ([_bad(metric="response")], "steps.0.metric", "no response target"),
    ([_bad(trigger="late")], "steps.0.trigger", "warning, breach"),
    ([_bad(delay_minutes=-1)], "steps.0.delay_minutes", "0 to"),
    ([_bad(delay_minutes="5")], "steps.0.delay_minutes", "whole number"),
    ([_bad(delay_minutes=True)], "steps.0.delay_minutes", "whole number"),
    ([_bad(trigger="warning", delay_minutes=5)], "steps.0.delay_minutes", "Only a breach"),
    ([_bad(actions=[])], "steps.0.actions", "non-empty"),
    ([_bad(actions="raise_level")], "steps.0.actions", "non-empty"),
    ([_bad(actions=["page_the_ceo"], level=None)], "steps.0.actions", "page_the_ceo"),
    ([_bad(actions=["raise_level", "raise_level"])], "steps.0.actions", "once"),
    ([{k: v for k, v in VALID.items() if k != "actions"}], "steps.0.actions", "Missing"),
    ([_bad(level=None)], "steps.0.level", "1, 2 or 3"),
    ([_bad(level=4)], "steps.0.level", "1, 2 or 3"),
    ([_bad(actions=["notify_assignee"])], "steps.0.level", "raise_level"),
    ([_bad(group_id=1)], "steps.0.group_id", "next_line"),
    ([_bad(actions=["next_line"], level=None, group_id=999_999)], "steps.0.group_id", "Unknown"),
    ([_bad(working_hours="yes")], "steps.0.working_hours", "true or false"),
    ([_bad(colour="red")], "steps.0.colour", "Unknown field"),
    (["resolution-breach"], "steps.0", "object"),
    ([_bad(key=f"s{n}") for n in range(21)], "steps", "20"),
])
def test_bad_steps_are_refused_naming_the_field_and_nothing_is_saved(admin_api, calendars,
                                                                      steps, field, reason):
    steps = [{k: v for k, v in s.items() if v is not None} if isinstance(s, dict) else s
             for s in steps]
    response = admin_api.post("/sla/policies", json={
        "name": "Bad", "calendar_id": calendars["always"].id, "resolution_minutes": 60,
        "steps": steps})
    assert response.status_code == 422, response.get_json()
    fields = response.get_json()["error"]["fields"]
    assert field in fields, fields
    assert any(reason in text for text in fields[field]), fields[field]
    assert count(SlaPolicy) == 0


def test_a_first_line_group_is_no_next_line(admin_api, calendars, desk):
    response = admin_api.post("/sla/policies", json={
        "name": "Bad", "calendar_id": calendars["always"].id, "resolution_minutes": 60,
        "steps": [{"key": "up", "metric": "resolution", "trigger": "breach",
                   "actions": ["next_line"], "group_id": desk.l1.id}]})
    assert response.status_code == 422
    assert "first-line" in response.get_json()["error"]["fields"]["steps.0.group_id"][0]


def test_removing_a_target_that_steps_need_is_refused(admin_api, calendars):
    created = admin_api.post("/sla/policies", json={
        "name": "Standard", "calendar_id": calendars["always"].id, "response_minutes": 60,
        "steps": [{"key": "r", "metric": "response", "trigger": "breach",
                   "actions": ["notify_assignee"]}]}).get_json()
    url = f"/sla/policies/{created['id']}"
    refused = admin_api.put(url, json={"response_minutes": None, "version": 1})
    assert refused.status_code == 422
    assert "steps.0.metric" in refused.get_json()["error"]["fields"]
    assert admin_api.get(url).get_json()["response_minutes"] == 60
    assert admin_api.put(url, json={"steps": None, "version": 1}).status_code == 422


def test_only_admins_write_steps(world, desk, calendars):
    created = make_policy(calendars, [])
    response = world.api(desk.manager).put(f"/sla/policies/{created.id}", json={
        "steps": [VALID], "version": 1})
    assert response.status_code == 403
    db.session.rollback()
    assert db.session.get(SlaPolicy, created.id).steps == []


# --- the demo's defaults -------------------------------------------------------------------------------


def test_the_demo_escalates_a_standard_ticket_to_the_assignee_then_the_manager_in_red(app, world):
    from servicedesk.demo import seed_demo
    from servicedesk.identity import service as identity

    seed_demo()
    standard = db.session.scalars(select(SlaPolicy).where(SlaPolicy.name == "Standard")).one()
    by_key = {s["key"]: s for s in standard.steps}
    assert by_key["response-breach"]["actions"] == ["notify_assignee"]
    assert by_key["resolution-breach"]["actions"] == ["notify_group_manager", "raise_level"]
    assert by_key["resolution-breach"]["level"] == 3
    assert standard.response_minutes == 180 and standard.resolution_minutes == 480

    agent, manager = identity.get_user("agent"), identity.get_user("manager")
    employee = identity.get_user("employee")
    response = world.api(agent).post("/incidents", json={
        "title": "Outlook crashes", "requester": employee.username, "impact": "medium",
        "urgency": "medium", "assignee": agent.username})
    assert response.status_code == 201, response.get_json()
    ticket = db.session.scalars(select(Ticket).where(
        Ticket.number == response.get_json()["number"])).one()
    table = Ticket.__table__
    db.session.execute(update(table).where(table.c.id == ticket.id).values(created_at=BASE))
    db.session.commit()
    db.session.refresh(ticket)
    refresh_clocks(ticket, None)
    db.session.commit()
    assert fresh(ticket).sla_policy.name == "Standard"

    # Monday 09:00 Berlin + 3 business hours: 12:00 Berlin, 11:00 UTC.
    sweep(now=datetime(2026, 1, 12, 11, 0, tzinfo=UTC))
    assert [(n.event, n.recipient_id) for n in outbox(ticket)] == [("sla.breach", agent.id)]
    assert fresh(ticket).escalation_level == 0
    # + 8 business hours: Monday 17:00 Berlin, 16:00 UTC -> the manager, and red.
    sweep(now=datetime(2026, 1, 12, 16, 0, tzinfo=UTC))
    after = fresh(ticket)
    assert after.escalation_level == 3
    assert ("sla.breach", manager.id) in [(n.event, n.recipient_id) for n in outbox(ticket)]
    assert db.session.get(SlaCalendar, standard.calendar_id).name == "Business hours"
