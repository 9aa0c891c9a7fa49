"""OLAs: a group's own targets, measured only while a ticket is with that group.

An operational level agreement (``GroupOla``) gives a support group (an L2 or L3 team)
targets of its own: resolution within ``target_minutes`` of business time *while the
ticket is with the group*, and optionally someone of the group assigned within
``response_minutes``. The second line is measured on its own time, not on the time
the ticket spent before it got there.

Like SLA clocks, OLA clocks are derived, never advanced: :func:`compute_ola_clocks`
(pure) rebuilds them from the ticket's history — its status timeline, the groups it
was with and whether someone was assigned — and :func:`refresh_olas` writes what
differs, on every ticket change (``sla.service.refresh_changed_tickets``) and in
``servicedesk sla repair``. One clock per ticket, group ever assigned and metric:

* it starts the first time the ticket comes to the group;
* time away from the group, in a pause status of the OLA, or resolved before a reopen
  is excluded (``paused_seconds``; ``paused_since`` while it lasts), so a ticket that
  comes back resumes its clock where it stopped;
* resolution stops when the ticket reaches a done state (with whichever group: a
  group that handed it on is measured on its own time only); response stops at the
  first moment the ticket is with the group *and* has an assignee (the assignee of a
  ticket is always a member of its group), or when the ticket is done.

Group changes are audited by name, and names can change: :class:`OlaGroupChange`
keeps the ids behind each ``group`` entry, written here with the entry itself.

:func:`sweep_olas` tells the group's manager once when a clock reaches its warning
and once when it is breached (a conditional UPDATE in the notification's own
transaction decides who tells), and fires ``servicedesk_sla_event`` after the commit.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import groupby
from types import SimpleNamespace

from flask_babel import gettext as _
from sqlalchemy import Text, and_, cast, func, inspect, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from servicedesk import refdata, types
from servicedesk.errors import Conflict, NotFound, ValidationError
from servicedesk.extensions import db, read_only_transaction
from servicedesk.identity.models import Group, User
from servicedesk.plugins import call_hook
from servicedesk.sla.admin import _check_version, _may_read, _may_write, pause_status_choices
from servicedesk.sla.calendar import BusinessCalendar
from servicedesk.sla.clocks import PAUSED, RUNNING, STOPPED, ClockState, _walk, pauses
from servicedesk.sla.maintenance import request_repair
from servicedesk.sla.models import (
    DEFAULT_PAUSE_STATUSES,
    DEFAULT_WARNING_PERCENT,
    OLA_METRICS,
    GroupOla,
    OlaClock,
    OlaGroupChange,
    SlaCalendar,
)
from servicedesk.sla.service import SLA_FINGERPRINT, calendar_for, clock_summary
from servicedesk.sqljson import json_array_agg, json_object
from servicedesk.tickets.models import AuditEntry, Ticket
from servicedesk.tickets.workflow import WORKFLOWS

log = logging.getLogger(__name__)

OLA_FIELDS = ("status", "pending_reason", "group", "assignee")
SWEEP_BATCH = 1000


def metric_name(group_id: int, metric: str) -> str:
    """How hooks and notifications name an OLA clock: ``ola:<group id>`` for resolution
    (the OLA's target), ``ola:<group id>:response`` for the response target."""
    return f"ola:{group_id}" if metric == "resolution" else f"ola:{group_id}:{metric}"


# --- pure: the clocks from the history -------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One audited change of a field the OLAs read; group values are group ids."""

    at: datetime
    field: str
    old: object
    new: object


@dataclass(frozen=True)
class TicketNow:
    """What the OLA clocks read of the ticket itself (its state now, and its start)."""

    kind: str
    created_at: datetime
    status: str
    pending_reason: str | None
    group_id: int | None
    assigned: bool


@dataclass(frozen=True)
class OlaEvent:
    """From ``at`` on, the ticket was in this status, with this group, (un)assigned."""

    at: datetime
    status: str
    pending_reason: str | None
    group_id: int | None
    assigned: bool


def ola_events(ticket: TicketNow, changes: Sequence[Change]) -> list[OlaEvent]:
    """The ticket's timeline from its changes (oldest first; those written at one
    instant are one change). The state at creation is the old value of each field's
    first change, or the current value if the field never changed."""
    changes = [c for c in changes if c.field in OLA_FIELDS]
    first: dict[str, object] = {}
    for change in changes:
        first.setdefault(change.field, change.old)
    state = {
        "status": first.get("status", ticket.status),
        "pending_reason": first.get("pending_reason", ticket.pending_reason),
        "group": first.get("group", ticket.group_id),
        "assignee": (first["assignee"] is not None) if "assignee" in first else ticket.assigned,
    }

    def event(at):
        return OlaEvent(at, state["status"], state["pending_reason"], state["group"],
                        bool(state["assignee"]))

    events = [event(ticket.created_at)]
    for at, group in groupby(changes, key=lambda c: c.at):
        for change in group:
            state[change.field] = (change.new is not None if change.field == "assignee"
                                   else change.new)
        new = event(at)
        if _differs(new, events[-1]):
            events.append(new)
    return events


def _differs(a: OlaEvent, b: OlaEvent) -> bool:
    return (a.status, a.pending_reason, a.group_id, a.assigned) != \
        (b.status, b.pending_reason, b.group_id, b.assigned)


def compute_ola_clocks(ticket: TicketNow, events: Sequence[OlaEvent], ola, group_id: int,
                       calendar: BusinessCalendar, now: datetime
                       ) -> dict[str, ClockState | None]:
    """The OLA clocks of ``group_id`` for ``ticket`` at ``now``: {"response": state |
    None, "resolution": state | None}; both None if the ticket never was with the group.

    ``ola`` gives ``target_minutes``, ``response_minutes`` (None: no response clock),
    ``pause_statuses`` and ``warning_percent``. Pure: same arguments, same answer.
    """
    result: dict[str, ClockState | None] = dict.fromkeys(OLA_METRICS)
    spans = _spans(events, ticket.created_at, now)
    start_index = next((i for i, (_a, _b, e) in enumerate(spans) if e.group_id == group_id),
                       None)
    if start_index is None:
        return result
    spans = spans[start_index:]
    start = spans[0][0]
    done = WORKFLOWS[ticket.kind].done_states
    pause = frozenset(ola.pause_statuses or ())

    def waiting(e: OlaEvent) -> bool:
        return e.group_id != group_id or pauses(pause, e.status, e.pending_reason)

    pieces = [(a, b, STOPPED if e.status in done else PAUSED if waiting(e) else RUNNING)
              for a, b, e in spans]
    result["resolution"] = _walk("resolution", pieces, ola.target_minutes,
                                 ola.warning_percent, calendar, start, now)
    if ola.response_minutes:
        met = next((a for a, _b, e in spans
                    if e.status in done or (e.group_id == group_id and e.assigned)), None)
        pieces = [(a, b, STOPPED if met is not None and a >= met
                   else PAUSED if waiting(e) else RUNNING) for a, b, e in spans]
        result["response"] = _walk("response", pieces, ola.response_minutes,
                                   ola.warning_percent, calendar, start, now)
    return result


def _spans(events: Sequence[OlaEvent], start: datetime, now: datetime):
    """[(from, to, event)] covering [start, now]: changes after ``now`` have not happened
    yet, changes before ``start`` count from it (as sla.clocks._timeline)."""
    points = [e for e in events if e.at <= now] or [events[0]]
    end = max(now, start)
    spans = []
    for i, e in enumerate(points):
        a = start if i == 0 else max(e.at, start)
        b = max(points[i + 1].at, start) if i + 1 < len(points) else end
        spans.append((a, b, e))
    return spans


# --- on the database: keeping the clock rows -------------------------------------------


def active_olas() -> dict[int, GroupOla]:
    """Active OLAs by group id, with their calendars: read-only copies, cached per
    process while the tables' fingerprint holds (servicedesk.refdata)."""
    return refdata.cached("group_olas", SLA_FINGERPRINT, _load_active_olas)


def _load_active_olas() -> dict[int, GroupOla]:
    with db.session.no_autoflush:
        rows = db.session.scalars(select(GroupOla).where(GroupOla.active.is_(True))
                                  .options(joinedload(GroupOla.calendar)))
        return {o.group_id: refdata.transient_copy(o, calendar=refdata.transient_copy(o.calendar))
                for o in rows}


def refresh_olas(tickets: Iterable[Ticket], *, now: datetime | None = None,
                 verify: bool = False) -> set[int]:
    """Recompute the OLA clock rows of ``tickets`` in the current transaction.

    Records the group ids behind this unit of work's group changes first (always:
    an OLA created later reads them), then rebuilds every clock of every active OLA
    of a group each ticket was ever with, writing only what differs and dropping
    clocks no OLA stands for any more. A handful of statements for any number of
    tickets (repair passes a batch). With no active OLA at all, a ticket change costs
    one query; ``verify`` (repair) still looks for clocks left by a deactivated OLA.
    Returns the ids of the tickets whose clocks changed. Does not commit.
    """
    tickets = [t for t in dict.fromkeys(tickets) if t.id is not None]
    if not tickets:
        return set()
    now = now or types.utcnow()
    ids = {t.id for t in tickets}
    with db.session.no_autoflush:
        pending = [obj for obj in db.session.new if isinstance(obj, AuditEntry)
                   and obj.ticket_id in ids and obj.field in OLA_FIELDS + ("number",)]
        pending_ids = _record_group_changes([e for e in pending if e.field == "group"])
        created = {e.ticket_id for e in pending if e.action == "created"}
        olas = active_olas()
        if not olas and not verify:
            return set()
        stored = ids - created
        existing: dict[int, dict[tuple[int, str], OlaClock]] = defaultdict(dict)
        if stored:
            for row in db.session.scalars(select(OlaClock).where(OlaClock.ticket_id.in_(stored))):
                existing[row.ticket_id][(row.group_id, row.metric)] = row
        if not olas and not existing:
            return set()
        history = _stored_changes(stored) if olas and stored else defaultdict(list)
        for entry in sorted((e for e in pending if e.field != "number"), key=lambda e: e.at):
            history[entry.ticket_id].append(_change(entry, pending_ids.get(id(entry))))
        changed = set()
        for ticket in tickets:
            wanted: dict[tuple[int, str], ClockState] = {}
            if olas:
                facts = _facts(ticket)
                events = ola_events(facts, history.get(ticket.id, ()))
                for group_id in dict.fromkeys(e.group_id for e in events):
                    ola = olas.get(group_id)
                    if ola is None:
                        continue
                    states = compute_ola_clocks(facts, events, ola, group_id,
                                                calendar_for(ola.calendar), now)
                    wanted.update({(group_id, m): s for m, s in states.items() if s is not None})
            if _write(ticket.id, existing.get(ticket.id, {}), wanted):
                changed.add(ticket.id)
    return changed


def _write(ticket_id: int, rows: dict, wanted: dict) -> bool:
    changed = False
    for key, row in rows.items():
        if key not in wanted:
            db.session.delete(row)
            changed = True
    for (group_id, metric), state in wanted.items():
        values = state.row_values()
        row = rows.get((group_id, metric))
        if row is None:
            db.session.add(OlaClock(ticket_id=ticket_id, group_id=group_id, metric=metric,
                                    **values))
            changed = True
            continue
        for attr, value in values.items():
            if getattr(row, attr) != value:
                setattr(row, attr, value)
                changed = True
    return changed


def _facts(ticket: Ticket) -> TicketNow:
    """The ticket now. Relationships changed in this unit of work are ahead of their
    foreign-key columns until the flush, so a loaded relationship wins."""
    loaded = inspect(ticket).dict
    group_id = ticket.group_id
    if "group" in loaded:
        group_id = loaded["group"].id if loaded["group"] is not None else None
    assigned = ticket.assignee_id is not None
    if "assignee" in loaded:
        assigned = loaded["assignee"] is not None
    return TicketNow(ticket.kind, ticket.created_at, ticket.status, ticket.pending_reason,
                     group_id, assigned)


def _group_ids(names: Iterable[str | None]) -> dict[str, int]:
    names = {n for n in names if n is not None}
    if not names:
        return {}
    return dict(db.session.execute(select(Group.name, Group.id).where(Group.name.in_(names))).all())


def _record_group_changes(entries: list[AuditEntry]) -> dict[int, tuple]:
    """Write the ids behind this unit of work's ``group`` entries (names are exact *now*);
    {id(entry): (old id, new id)}."""
    if not entries:
        return {}
    known = {id(obj.entry) for obj in db.session.new if isinstance(obj, OlaGroupChange)}
    by_name = _group_ids([e.old_value for e in entries] + [e.new_value for e in entries])
    result = {}
    for entry in entries:
        ids = (by_name.get(entry.old_value), by_name.get(entry.new_value))
        result[id(entry)] = ids
        if id(entry) not in known:
            db.session.add(OlaGroupChange(entry=entry, ticket_id=entry.ticket_id,
                                          old_group_id=ids[0], new_group_id=ids[1]))
    return result


def _stored_changes(ticket_ids: set[int]) -> dict[int, list[Change]]:
    rows = db.session.execute(
        select(AuditEntry.ticket_id, AuditEntry.at, AuditEntry.field, AuditEntry.old_value,
               AuditEntry.new_value, OlaGroupChange.audit_id, OlaGroupChange.old_group_id,
               OlaGroupChange.new_group_id)
        .outerjoin(OlaGroupChange, OlaGroupChange.audit_id == AuditEntry.id)
        .where(AuditEntry.ticket_id.in_(ticket_ids), AuditEntry.field.in_(OLA_FIELDS))
        .order_by(AuditEntry.ticket_id, AuditEntry.id)
    ).all()
    # Entries older than ola_group_changes (or written around it) are read by name.
    by_name = _group_ids(name for r in rows if r.field == "group" and r.audit_id is None
                         for name in (r.old_value, r.new_value))
    history: dict[int, list[Change]] = defaultdict(list)
    for r in rows:
        if r.field == "group":
            ids = ((r.old_group_id, r.new_group_id) if r.audit_id is not None
                   else (by_name.get(r.old_value), by_name.get(r.new_value)))
            history[r.ticket_id].append(Change(r.at, "group", *ids))
        else:
            history[r.ticket_id].append(Change(r.at, r.field, r.old_value, r.new_value))
    return history


def _change(entry: AuditEntry, group_ids: tuple | None) -> Change:
    if entry.field == "group":
        return Change(entry.at, "group", *(group_ids or (None, None)))
    return Change(entry.at, entry.field, entry.old_value, entry.new_value)


# --- reading ---------------------------------------------------------------------------
#
# A ticket's OLA clocks are read as one correlated subquery that aggregates them into a
# JSON array (with their group's name and OLA calendar), so the API's incident list
# stays one statement per page however many clocks it shows; the detail reads the same
# column for one ticket, so both give the same answer.


_CLOCK_KEYS = ("target_seconds", "started_at", "paused_seconds", "paused_since", "due_at",
               "warning_at", "met_at", "breached_at")
_INSTANTS = ("started_at", "paused_since", "due_at", "warning_at", "met_at", "breached_at")


@dataclass(frozen=True)
class _Clock:
    """What clock_summary reads of a clock row."""

    target_seconds: int
    started_at: datetime
    paused_seconds: int
    paused_since: datetime | None
    due_at: datetime | None
    warning_at: datetime | None
    met_at: datetime | None
    breached_at: datetime | None


def ola_clocks_column(ticket_id):
    """A correlated scalar subquery: the OLA clocks of ``ticket_id`` (a column or a
    value) as one JSON array; :func:`decode_ola_column` turns it into the API's list."""
    pairs = []
    for key, column in (
        ("group_id", OlaClock.group_id), ("group", Group.name), ("metric", OlaClock.metric),
        *((key, getattr(OlaClock, key)) for key in _CLOCK_KEYS),
        ("cal_id", SlaCalendar.id), ("cal_version", SlaCalendar.version),
        ("cal_tz", SlaCalendar.timezone), ("cal_week", cast(SlaCalendar.week, Text)),
        ("cal_holidays", cast(SlaCalendar.holidays, Text)),
    ):
        pairs += [literal_column(f"'{key}'"), column]
    return (select(json_array_agg(json_object(*pairs)))
            .select_from(OlaClock)
            .join(Group, Group.id == OlaClock.group_id)
            .outerjoin(GroupOla, GroupOla.group_id == OlaClock.group_id)
            .outerjoin(SlaCalendar, SlaCalendar.id == GroupOla.calendar_id)
            .where(OlaClock.ticket_id == ticket_id)
            .scalar_subquery())


def _instant(value) -> datetime | None:
    # SQLite gives the stored text ("2026-01-12 08:00:00.000000"), PostgreSQL ISO 8601.
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def decode_ola_column(value, *, staff: bool, now: datetime | None = None) -> list[dict]:
    """The API's ``ola`` list from :func:`ola_clocks_column`'s value: [{group, metric,
    due_at, warning_at, elapsed_percent, paused, breached, met_at}], oldest first.
    OLAs are agreements between IT teams: for requesters (``staff`` false), []."""
    if not staff:
        return []
    items = json.loads(value) if isinstance(value, str) else (value or [])
    if not items:
        return []
    now = now or types.utcnow()
    result = []
    for item in items:
        clock = _Clock(**{key: _instant(item[key]) if key in _INSTANTS else item[key]
                          for key in _CLOCK_KEYS})
        calendar = None
        if item["cal_id"] is not None:
            calendar = calendar_for(SimpleNamespace(
                id=item["cal_id"], version=item["cal_version"], timezone=item["cal_tz"],
                week=json.loads(item["cal_week"]), holidays=json.loads(item["cal_holidays"])))
        result.append(((clock.started_at, item["group_id"], item["metric"]),
                       {"group": item["group"], "metric": item["metric"],
                        **clock_summary(clock, calendar, now)}))
    return [summary for _key, summary in sorted(result, key=lambda pair: pair[0])]


def ola_summary(actor: User | None, ticket: Ticket, now: datetime | None = None) -> list[dict]:
    """The API's ``ola`` list of one ticket (one statement; none for requesters)."""
    if actor is None or not actor.is_staff:
        return []
    # After a write's commit (the API answers with the ticket) this read must not take
    # SQLite's write lock again for the rest of the request: a transaction of its own.
    with read_only_transaction():
        value = db.session.scalar(select(ola_clocks_column(ticket.id)))
    return decode_ola_column(value, staff=True, now=now)


# --- the sweep: warnings and breaches, told once ---------------------------------------


def _active_join(query):
    return query.join(GroupOla, and_(GroupOla.group_id == OlaClock.group_id,
                                     GroupOla.active.is_(True)))


def sweep_olas(now: datetime | None = None, batch: int = SWEEP_BATCH) -> int:
    """Tell each group's manager of the OLA clocks that reached their warning or were
    breached, once each; fire ``servicedesk_sla_event`` after each commit. Returns how
    many events fired. Idempotent and safe to race: whichever sweep's conditional
    UPDATE sets ``breach_notified_at`` (``warning_notified_at``) tells, in the same
    transaction as the outbox row; the others update nothing and move on. At most
    ``batch`` clocks per kind of event: the next sweep does the rest. Commits once per
    event told: call it with no unit of work of your own in progress.
    """
    now = now or types.utcnow()
    breach_due = and_(OlaClock.met_at.is_(None), OlaClock.due_at <= now,
                      OlaClock.breach_notified_at.is_(None))
    breach_seen = and_(OlaClock.breached_at.is_not(None), OlaClock.breach_notified_at.is_(None))
    warning = and_(OlaClock.met_at.is_(None), OlaClock.warning_at <= now,
                   OlaClock.warning_notified_at.is_(None),
                   or_(OlaClock.due_at.is_(None), OlaClock.due_at > now))
    # Each branch is written as its partial index's predicate, so it reads only that.
    breaches = _candidates(breach_due, batch) + _candidates(breach_seen, batch)
    warnings = _candidates(warning, batch)
    fired = 0
    for clock_id in dict.fromkeys(breaches):
        fired += _tell(clock_id, "breach", or_(breach_due, breach_seen), now, {
            "breach_notified_at": now,
            "warning_notified_at": func.coalesce(OlaClock.warning_notified_at, now),
            "breached_at": func.coalesce(OlaClock.breached_at, OlaClock.due_at),
        })
    for clock_id in warnings:
        fired += _tell(clock_id, "warning", warning, now, {"warning_notified_at": now})
    return fired


def _candidates(condition, batch: int) -> list[int]:
    return list(db.session.scalars(
        _active_join(select(OlaClock.id)).where(condition).order_by(OlaClock.id).limit(batch)))


def _tell(clock_id: int, event: str, condition, now: datetime, values: dict) -> int:
    """One event of one clock: claim it, queue the manager's notification, commit, hook."""
    from servicedesk.notify.service import queue_notification

    try:
        claimed = db.session.execute(
            update(OlaClock).where(OlaClock.id == clock_id, condition).values(**values)
            .execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            db.session.rollback()  # told already (another sweep), or no longer due
            return 0
        clock = db.session.get(OlaClock, clock_id, populate_existing=True)
        ticket = db.session.get(Ticket, clock.ticket_id)
        group = db.session.get(Group, clock.group_id)
        metric = metric_name(clock.group_id, clock.metric)
        if group is not None and group.manager is not None:
            queue_notification(
                f"sla.{event}", group.manager, ticket=ticket,
                context={"metric": metric, "step": None, "due_at": clock.due_at,
                         "group": group.name},
                dedupe_key=f"ola-{clock.ticket_id}-{clock.group_id}-{clock.metric}-{event}")
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("OLA %s of clock %s failed; the next sweep retries it", event, clock_id)
        return 0
    call_hook("servicedesk_sla_event", ticket=ticket, metric=metric, event=event, step=None)
    return 1


# --- managing OLAs (staff read, admins write) ------------------------------------------

OLA_FIELDS_WRITABLE = ("group_id", "target_minutes", "response_minutes", "calendar_id",
                       "pause_statuses", "warning_percent", "active")


def list_olas(actor: User | None) -> list[GroupOla]:
    _may_read(actor)
    return list(db.session.scalars(
        select(GroupOla).join(Group, Group.id == GroupOla.group_id)
        .options(joinedload(GroupOla.group), joinedload(GroupOla.calendar))
        .order_by(Group.support_line, Group.name)))


def get_ola(actor: User | None, ola_id: int) -> GroupOla:
    _may_read(actor)
    row = db.session.get(GroupOla, ola_id)
    if row is None:
        raise NotFound(_("No OLA %(id)s.", id=ola_id))
    return row


def _validate_ola(values: dict, row_id: int | None) -> None:
    errors = {}
    if values.get("group_id") is not None:
        if db.session.get(Group, values["group_id"]) is None:
            errors["group_id"] = [_("Unknown group.")]
        else:
            clash = db.session.scalars(
                select(GroupOla.id).where(GroupOla.group_id == values["group_id"])).first()
            if clash is not None and clash != row_id:
                raise Conflict(_("That group has an OLA already; change that one."),
                               fields={"group_id": [_("Already has an OLA.")]},
                               code="duplicate_ola")
    if values.get("calendar_id") is not None \
            and db.session.get(SlaCalendar, values["calendar_id"]) is None:
        errors["calendar_id"] = [_("Unknown calendar.")]
    choices = pause_status_choices([])
    bad = [s for s in values.get("pause_statuses") or [] if s not in choices]
    if bad:
        errors["pause_statuses"] = [
            _("Unknown or non-pausing status(es): %(unknown)s; use one of: %(choices)s.",
              unknown=", ".join(map(repr, bad)), choices=", ".join(sorted(choices)))]
    if errors:
        raise ValidationError(_("The OLA is not valid."), fields=errors)


def _commit_ola() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(_("Someone else changed this OLA at the same moment; reload and retry."),
                       fields={"version": [_("Stale.")]}, code="stale_version") from None
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_("That group has an OLA already; change that one."),
                       fields={"group_id": [_("Already has an OLA.")]},
                       code="duplicate_ola") from None
    request_repair()  # open tickets' OLA clocks follow the new targets


def create_ola(actor: User | None, data: dict) -> GroupOla:
    _may_write(actor)
    missing = [f for f in ("group_id", "target_minutes", "calendar_id")
               if data.get(f) in (None, "")]
    if missing:
        raise ValidationError(_("An OLA needs a group, a target and a calendar."),
                              fields={f: [_("Missing data for required field.")] for f in missing})
    values = {"response_minutes": None, "pause_statuses": list(DEFAULT_PAUSE_STATUSES),
              "warning_percent": DEFAULT_WARNING_PERCENT, "active": True,
              **{f: data[f] for f in OLA_FIELDS_WRITABLE if f in data}}
    values["pause_statuses"] = list(dict.fromkeys(values["pause_statuses"] or []))
    _validate_ola(values, None)
    row = GroupOla(**values)
    db.session.add(row)
    _commit_ola()
    return row


def update_ola(actor: User | None, ola_id: int, data: dict) -> GroupOla:
    _may_write(actor)
    row = get_ola(actor, ola_id)
    _check_version(row, data.get("version"), "OLA")
    changes = {f: data[f] for f in OLA_FIELDS_WRITABLE if f in data}
    for field in ("group_id", "target_minutes", "calendar_id", "warning_percent", "active"):
        if field in changes and changes[field] in (None, ""):
            raise ValidationError(_("The OLA's %(field)s cannot be empty.", field=field),
                                  fields={field: [_("Field may not be null.")]})
    if "pause_statuses" in changes:
        changes["pause_statuses"] = list(dict.fromkeys(changes["pause_statuses"] or []))
    _validate_ola({f: getattr(row, f) for f in OLA_FIELDS_WRITABLE} | changes, row.id)
    for attr, value in changes.items():
        if getattr(row, attr) != value:
            setattr(row, attr, value)
    _commit_ola()
    return row
