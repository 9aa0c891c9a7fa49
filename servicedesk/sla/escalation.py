"""SLA escalation: firing the steps due at a clock's warning, breach or breach + delay.

The step format, its validation and when each step is due are in
``servicedesk.sla.steps``. Besides its steps, every clock has two events of its own, its *warning* (at
``warning_at``) and its *breach* (at ``due_at``), handled exactly like steps under the
reserved keys ``_warning`` / ``_breach``: they call the ``servicedesk_sla_event`` hook
(``event="warning"`` / ``"breach"``) once per clock, whether or not a step exists.

**Exactly once.** Whatever fires is first written as an ``sla_escalations`` row, unique
per (ticket, metric, step_key), in the same transaction as the step's effects, audit
entries and outbox rows. The ticket row is locked first (PostgreSQL), so racing
workers queue and the later ones find the row and fire nothing; should two ever get
past that, the unique row makes the second roll back. A worker killed mid-step leaves
nothing behind: its transaction never committed.

**On time.** ``sla_clocks.next_step_at`` holds the earliest unfired instant of each
clock (kept by ``refresh_clocks`` on every ticket change, and after every firing).
With Redis, each change of it schedules ``servicedesk.sla.jobs.fire_due(ticket_id)``
with RQ's ``enqueue_at`` under the id ``sla-<ticket>-<metric>-<step>`` (re-scheduling
replaces). RQ's scheduler counts in whole seconds, so the job is scheduled at the
second the instant falls in and waits out the fraction (under a second and a half)
itself: a step is neither early nor a second late; it then fires whatever else is due
by then (:func:`help_due`, up to 2 s), so a burst is not fired one forked job per
ticket. The periodic :func:`sweep` (every
minute; in-process every 15 s without Redis) reads what is due from the partial index
``ix_sla_clocks_next_step`` and fires it, so a lost job (Redis flushed, a worker
killed: RQ only requeues those after minutes) costs at most one sweep interval.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from flask import current_app
from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from servicedesk.errors import Conflict
from servicedesk.extensions import db
from servicedesk.identity.models import Group, User
from servicedesk.sla.models import METRICS, SlaCalendar, SlaClock, SlaEscalation, SlaPolicy
from servicedesk.sla.steps import EVENT_OF, NOTIFY_ACTIONS, clock_plan, next_step
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.service import apply_changes, commit_and_notify, record
from servicedesk.tickets.workflow import WORKFLOWS
from servicedesk.types import utcnow

log = logging.getLogger(__name__)


# --- running ------------------------------------------------------------------------

FIRE_JOB = "servicedesk.sla.jobs.fire_due"
SWEEP_BATCH = 500
# A sweep stops after this long (the rest is the next sweep's): it runs every minute.
SWEEP_SECONDS = 45.0
# A scheduled job that arrives this much early waits for its instant (RQ's scheduler
# works in whole seconds); anything earlier is left to its own job or the sweep.
EARLY_WAIT_SECONDS = 1.5
# After its own ticket, a fire_due job fires whatever else is due by then, for this
# long at most: a burst of instants is fired by the first job that runs, not one
# forked job per ticket in turn (a worker forks a process per job).
HELP_SECONDS = 2.0
HELP_TICKETS = 200
ATTEMPTS = 3
_PENDING = "servicedesk_sla_schedule"


# --- what is due next, per clock ------------------------------------------------------


def fired_keys(ticket_id: int) -> set[tuple[str, str]]:
    """{(metric, step_key)} already fired for the ticket (this transaction's included,
    once flushed)."""
    return {(metric, key) for metric, key in db.session.execute(
        select(SlaEscalation.metric, SlaEscalation.step_key)
        .where(SlaEscalation.ticket_id == ticket_id))}


def update_next_steps(ticket: Ticket, policy: SlaPolicy | None, rows: list[SlaClock]) -> bool:
    """Set each clock row's ``next_step_at``; called by ``refresh_clocks`` (no commit).

    A ticket whose clock rows are all new has fired nothing: no query. Whenever the
    instant changes, the ticket's fire_due job is scheduled after the commit (with
    Redis). Returns whether a row changed.
    """
    if policy is None or not rows:
        return False
    fresh = all(row in db.session.new for row in rows)
    fired = set() if fresh else fired_keys(ticket.id)
    changed = False
    for row in rows:
        upcoming = next_step(policy, row, fired)
        value = upcoming[0] if upcoming is not None else None
        if row.next_step_at != value:
            row.next_step_at = value
            changed = True
            if upcoming is not None:
                schedule_after_commit(ticket.id, row.metric, upcoming[1], value)
    return changed


# --- scheduling on RQ, after the commit ---------------------------------------------------


def job_id(ticket_id: int, metric: str, step_key: str) -> str:
    return f"sla-{ticket_id}-{metric}-{step_key}"


def schedule_after_commit(ticket_id: int, metric: str, step_key: str, when: datetime) -> None:
    """Remember to schedule fire_due(ticket_id) at ``when`` once this transaction commits
    (nothing to do without Redis: the in-process timer sweeps)."""
    if not current_app.config.get("SERVICEDESK_REDIS_URL"):
        return
    pending = db.session().info.setdefault(_PENDING, {})
    pending[job_id(ticket_id, metric, step_key)] = (ticket_id, when)


@event.listens_for(Session, "after_soft_rollback")
def _forget_schedule(session, previous_transaction):
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "after_commit")
def _schedule_pending(session):
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING, None)
    if pending:
        schedule_jobs(pending)


def schedule_jobs(pending: dict[str, tuple[int, datetime]]) -> None:
    """enqueue_at each job: {job_id: (ticket_id, when)}. Never raises: what is lost here
    the sweep fires (at most one sweep interval late)."""
    try:
        from rq.job import Job

        from servicedesk.jobs import get_queue

        queue = get_queue()
        if queue is None:
            return
        with queue.connection.pipeline() as pipe:
            for name, (ticket_id, when) in pending.items():
                # A finished job of the same id keeps its result's expiry: start afresh,
                # or the scheduled job could expire before its instant.
                pipe.delete(Job.key_for(name))
                queue.enqueue_at(when, FIRE_JOB, ticket_id, job_id=name, pipeline=pipe)
            pipe.execute()
    except Exception:
        log.exception("could not schedule SLA escalation jobs; the sweep will fire them")


# --- firing -------------------------------------------------------------------------------


def fire_due(ticket_id: int, now: datetime | None = None, *, wait: bool = False,
             skip_locked: bool = False) -> int:
    """Fire whatever of ``ticket_id`` is due at ``now`` (default: the clock); how many
    steps and events fired. Idempotent and safe to race: each fires once.

    ``wait`` (the scheduled job): nothing is due yet but something is within
    EARLY_WAIT_SECONDS, wait for it (RQ schedules to the whole second).
    ``skip_locked``: leave the ticket alone if another transaction holds it (PostgreSQL:
    someone is firing or changing it right now).
    """
    for _attempt in range(ATTEMPTS):
        try:
            fired, upcoming = _fire(ticket_id, now, skip_locked)
        except (Conflict, IntegrityError, StaleDataError, OperationalError) as exc:
            # Someone else fired or changed it at the same moment: look again.
            db.session.rollback()
            log.info("SLA firing for ticket %s raced (%s); retrying", ticket_id, exc)
            continue
        if fired or not wait or now is not None or upcoming is None:
            return fired
        pause = (upcoming - utcnow()).total_seconds()
        if pause > EARLY_WAIT_SECONDS:
            return 0
        time.sleep(max(pause, 0) + 0.001)
    return 0


def _fire(ticket_id: int, now: datetime | None,
          skip_locked: bool = False) -> tuple[int, datetime | None]:
    at = now or utcnow()
    ticket = db.session.scalars(
        select(Ticket).where(Ticket.id == ticket_id)
        .with_for_update(of=Ticket.__table__, skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if ticket is None or ticket.sla_policy_id is None:
        db.session.rollback()
        return 0, None
    policy = db.session.get(SlaPolicy, ticket.sla_policy_id, populate_existing=True)
    clocks = list(db.session.scalars(
        select(SlaClock).where(SlaClock.ticket_id == ticket_id).order_by(SlaClock.metric)
        .execution_options(populate_existing=True)))
    fired = fired_keys(ticket_id)
    due, upcoming = [], None
    for clock in clocks:
        if clock.met_at is not None:
            continue
        for key, step, instant in clock_plan(policy, clock):
            if instant is None or (clock.metric, key) in fired:
                continue
            if instant <= at:
                due.append((instant, clock.metric, key, step))
            elif upcoming is None or instant < upcoming:
                upcoming = instant
    if not due:
        _settle(ticket, policy, clocks, fired)
        return 0, upcoming
    due.sort(key=lambda item: (item[0], METRICS.index(item[1])))
    fired_at = utcnow()
    for instant, metric, key, step in due:
        db.session.add(SlaEscalation(ticket_id=ticket_id, metric=metric, step_key=key,
                                     policy_id=policy.id if policy else None, due_at=instant,
                                     fired_at=fired_at))
    # The unique row first: a racer that got here before us fails now, before any effect.
    db.session.flush()
    changes, hooks, events = [], [], []
    for instant, metric, key, step in due:
        if step is None:
            events.append(("servicedesk_sla_event", {"ticket": ticket, "metric": metric,
                                                     "event": EVENT_OF[key], "step": None}))
            continue
        changes += apply_step(ticket, policy, metric, step, instant, at, hooks)
        events.append(("servicedesk_sla_event", {"ticket": ticket, "metric": metric,
                                                 "event": "step", "step": dict(step)}))
    if changes:
        hooks.insert(0, ("servicedesk_ticket_updated",
                         {"ticket": ticket, "actor": None, "changes": changes}))
    # Clocks are refreshed in there (a raised priority re-evaluates the targets), and
    # with them next_step_at and the next job.
    commit_and_notify(hooks + events)
    return len(due), None


def _settle(ticket: Ticket, policy: SlaPolicy | None, clocks: list[SlaClock], fired) -> None:
    """Nothing due: correct a stale next_step_at (so the sweep stops finding the clock)
    and end the transaction."""
    changed = False
    for clock in clocks:
        upcoming = next_step(policy, clock, fired)
        value = upcoming[0] if upcoming is not None else None
        if clock.next_step_at != value:
            clock.next_step_at = value
            changed = True
            if upcoming is not None:
                schedule_after_commit(ticket.id, clock.metric, upcoming[1], value)
    if changed:
        db.session.commit()
    else:
        db.session.rollback()


# --- effects ------------------------------------------------------------------------------


def apply_step(ticket: Ticket, policy: SlaPolicy | None, metric: str, step: dict,
               instant: datetime, now: datetime, hooks: list) -> list:
    """Do what ``step`` says to ``ticket`` in the current transaction; its audit entries.

    Moves first (priority, line, level), then notifications, so these reach the people
    the ticket is with after the step. A status change is added to ``hooks``.
    """
    actions = step.get("actions") or ()
    at = utcnow()  # audit entries carry real instants: clocks are computed from them
    entries = []
    if "raise_priority" in actions:
        entries += _raise_priority(ticket, at)
    if "next_line" in actions:
        entries += _next_line(ticket, step, at, hooks)
    if "raise_level" in actions:
        entries += _raise_level(ticket, int(step.get("level") or 1), at)
    if any(action in actions for action in NOTIFY_ACTIONS):
        _notify(ticket, policy, metric, step, instant, now)
    return entries


def _raise_priority(ticket: Ticket, at: datetime) -> list:
    """One step more urgent (P3 -> P2), audited; P1 stays. The clocks are re-evaluated
    from the ticket's start (refresh_clocks), keeping elapsed and paused time."""
    if ticket.priority <= 1:
        return []
    return apply_changes(ticket, None, {"priority": ticket.priority - 1}, action="escalated",
                         at=at)


def _next_line(ticket: Ticket, step: dict, at: datetime, hooks: list) -> list:
    """Hand the ticket to a group of the next support line: the step's ``group_id`` if
    that group is in a higher line than the ticket, else the first group (by name) of
    line current + 1; the assignee is cleared. Nothing when there is no such group."""
    current = ticket.support_line or (ticket.group.support_line if ticket.group else 1)
    if step.get("group_id"):
        group = db.session.get(Group, step["group_id"])
        if group is not None and group.support_line <= current:
            group = None
    else:
        group = db.session.scalars(
            select(Group).where(Group.support_line == current + 1).order_by(Group.name).limit(1)
        ).first()
    if group is None:
        return []
    entries = apply_changes(ticket, None, {"group": group, "support_line": group.support_line,
                                           "assignee": None}, action="escalated", at=at)
    ticket.escalation_count = (ticket.escalation_count or 0) + 1
    workflow = WORKFLOWS.get(ticket.kind)
    # "assigned" means someone has it; nobody has it now: back to the kind's first state.
    if workflow is not None and ticket.status == "assigned" and workflow.initial != "assigned":
        source = ticket.status
        entries += apply_changes(ticket, None, {"status": workflow.initial}, action="transition",
                                 at=at)
        ticket.is_open = workflow.is_open(workflow.initial)
        hooks.append(("servicedesk_ticket_transitioned",
                      {"ticket": ticket, "actor": None, "from_status": source,
                       "to_status": workflow.initial}))
    return entries


def _raise_level(ticket: Ticket, level: int, at: datetime) -> list:
    """escalation_level = max(current, level), audited. Written like the SLA columns (no
    version bump): nobody edits the level, so an agent's next save must not be stale."""
    old = ticket.escalation_level or 0
    new = max(old, level)
    if new == old:
        return []
    table = Ticket.__table__
    db.session.execute(update(table).where(table.c.id == ticket.id)
                       .values(escalation_level=new, updated_at=table.c.updated_at))
    set_committed_value(ticket, "escalation_level", new)
    return [record(ticket, None, "escalated", "escalation_level", old, new, at=at)]


def recipients(ticket: Ticket, actions) -> list[User]:
    """Who the step's notify actions address, each once; inactive users are left out.

    notify_assignee: the assignee, or, while nobody is assigned, the group's manager
    (someone must hear of it); notify_group_manager: the manager of the ticket's group;
    notify_requester: the requester.
    """
    found: list[User | None] = []
    manager = ticket.group.manager if ticket.group is not None else None
    if "notify_assignee" in actions:
        found.append(ticket.assignee or manager)
    if "notify_group_manager" in actions:
        found.append(manager)
    if "notify_requester" in actions:
        found.append(ticket.requester)
    unique = {}
    for user in found:
        if user is not None and user.active and user.id not in unique:
            unique[user.id] = user
    return list(unique.values())


def deliver_after(user: User, policy: SlaPolicy | None, now: datetime) -> datetime | None:
    """When a notification to ``user`` may go out: the start of their next working time
    (their own calendar, else the policy's); None when they are working now."""
    from servicedesk.sla.service import calendar_for

    row = db.session.get(SlaCalendar, user.calendar_id) if user.calendar_id else None
    if row is None and policy is not None:
        row = policy.calendar
    if row is None:
        return None
    start = calendar_for(row).next_working(now)
    return start if start > now else None


def _notify(ticket: Ticket, policy: SlaPolicy | None, metric: str, step: dict,
            instant: datetime, now: datetime) -> None:
    from servicedesk.notify.service import queue_notification

    event_name = "sla.warning" if step.get("trigger") == "warning" else "sla.breach"
    for user in recipients(ticket, step.get("actions") or ()):
        hold = deliver_after(user, policy, now) if step.get("working_hours", True) else None
        queue_notification(
            event_name, user, ticket=ticket,
            context={"metric": metric, "step": step["key"], "due_at": instant},
            dedupe_key=f"sla-{ticket.id}-{metric}-{step['key']}-{user.id}",
            deliver_after=hold,
        )


# --- the sweep ----------------------------------------------------------------------------


def due_clocks(now: datetime, after: tuple[datetime, int] | None, limit: int):
    """One batch of (clock id, ticket id, next_step_at) due at ``now``, in index order
    (ix_sla_clocks_next_step), after the keyset ``after``."""
    query = (select(SlaClock.id, SlaClock.ticket_id, SlaClock.next_step_at)
             .where(SlaClock.next_step_at <= now)
             .order_by(SlaClock.next_step_at, SlaClock.id)
             .limit(limit))
    if after is not None:
        query = query.where(or_(SlaClock.next_step_at > after[0],
                                and_(SlaClock.next_step_at == after[0], SlaClock.id > after[1])))
    return db.session.execute(query).all()


def help_due(time_limit: float = HELP_SECONDS, limit: int = HELP_TICKETS) -> int:
    """Fire other tickets due now, the earliest first, for at most ``time_limit``
    seconds; tickets another worker is busy with are skipped. How many fired."""
    now = utcnow()
    deadline = time.monotonic() + time_limit
    rows = due_clocks(now, None, limit)
    db.session.rollback()
    fired = 0
    for ticket_id in dict.fromkeys(row.ticket_id for row in rows):
        if time.monotonic() > deadline:
            break
        try:
            fired += fire_due(ticket_id, now=now, skip_locked=True)
        except Exception:
            db.session.rollback()
            log.exception("SLA escalation of ticket %s failed", ticket_id)
    return fired


def dispatch(now: datetime | None = None, batch: int = SWEEP_BATCH,
             time_limit: float | None = SWEEP_SECONDS) -> int:
    """The sweep on RQ: enqueue fire_due for every ticket with something due at ``now``,
    so every worker shares a backlog instead of one sweep firing it all; how many jobs.

    Reads the due clocks exactly as :func:`sweep` does (one indexed query per batch)
    and enqueues in pipelined batches, ids ``sla-<ticket>-due-<minute>``: two
    schedulers' sweeps in one minute enqueue one job per ticket, and a ticket still
    waiting a minute later simply gets another (fire_due is idempotent). Without Redis,
    fires inline (:func:`sweep`).
    """
    from servicedesk.jobs import get_queue

    queue = get_queue()
    if queue is None:
        return sweep(now, batch, time_limit)
    now = now or utcnow()
    minute = int(now.timestamp()) // 60
    deadline = None if time_limit is None else time.monotonic() + time_limit
    enqueued, after, seen = 0, None, set()
    while True:
        rows = due_clocks(now, after, batch)
        db.session.rollback()
        tickets = [t for t in dict.fromkeys(row.ticket_id for row in rows) if t not in seen]
        seen.update(tickets)
        if tickets:
            with queue.connection.pipeline() as pipe:
                for ticket_id in tickets:
                    queue.enqueue(FIRE_JOB, ticket_id, job_id=f"sla-{ticket_id}-due-{minute}",
                                  pipeline=pipe)
                pipe.execute()
            enqueued += len(tickets)
        if len(rows) < batch or (deadline is not None and time.monotonic() > deadline):
            return enqueued
        after = (rows[-1].next_step_at, rows[-1].id)


def sweep(now: datetime | None = None, batch: int = SWEEP_BATCH,
          time_limit: float | None = SWEEP_SECONDS) -> int:
    """Fire everything due at ``now`` (default: the clock); how many steps and events
    fired. One indexed query per batch of ``batch`` clocks, keyset-paged, so every due
    clock is looked at once; each ticket fires in its own transaction. Stops after
    ``time_limit`` seconds (the next sweep goes on). Idempotent: any number of sweeps
    and jobs may run at once."""
    return run_sweep(now, batch, time_limit)[0]


def run_sweep(now: datetime | None = None, batch: int = SWEEP_BATCH,
              time_limit: float | None = SWEEP_SECONDS) -> tuple[int, bool]:
    """:func:`sweep`, also saying whether it finished (False: stopped by the time limit)."""
    now = now or utcnow()
    deadline = None if time_limit is None else time.monotonic() + time_limit
    fired, after = 0, None
    while True:
        rows = due_clocks(now, after, batch)
        db.session.rollback()  # end the read: on SQLite it holds the write lock
        for ticket_id in dict.fromkeys(row.ticket_id for row in rows):
            try:
                fired += fire_due(ticket_id, now=now)
            except Exception:  # one ticket's failure must not hold up the others
                db.session.rollback()
                log.exception("SLA escalation of ticket %s failed", ticket_id)
            if deadline is not None and time.monotonic() > deadline:
                return fired, False
        if len(rows) < batch:
            return fired, True
        after = (rows[-1].next_step_at, rows[-1].id)

