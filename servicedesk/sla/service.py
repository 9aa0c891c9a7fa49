"""SLA on the database: which policy a ticket gets, its clock rows, repair, breaches next.

Clock rows are refreshed by ``servicedesk.tickets.service.commit_and_notify`` (through
:func:`refresh_changed_tickets`) right before every ticket change commits, so every
ticket kind keeps its clocks without code of its own. A refresh recomputes the rows
from the ticket's history (``servicedesk.sla.clocks``), never by patching them, and
:func:`repair_clocks` does the same for every open ticket (``servicedesk sla repair``).

The ticket's own SLA columns (``sla_policy_id``, ``sla_due_at``; for reports, each
stopped clock's outcome: ``sla_<metric>_breached``, ``sla_<metric>_business_seconds``)
are written with a plain UPDATE that leaves ``tickets.version`` (and ``updated_at``)
alone: bookkeeping by the system must never make an agent's next save fail as stale.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time

from flask_babel import gettext as _
from sqlalchemy import inspect, select, true, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from servicedesk import refdata, types
from servicedesk.errors import Forbidden
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.plugins import call_first_hook
from servicedesk.sla.calendar import BusinessCalendar
from servicedesk.sla.clocks import (
    STATUS_FIELDS,
    compute_clocks,
    elapsed_percent,
    events_from_history,
    stopped_seconds,
)
from servicedesk.sla.models import METRICS, SlaCalendar, SlaClock, SlaPolicy
from servicedesk.sla.schemas import MAX_MINUTES
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import SLA_NEVER, AuditEntry, Ticket
from servicedesk.tickets.service import record

__all__ = [
    "breaches_next", "build_calendar", "calendar_for", "compute_clocks", "match_policy",
    "refresh_changed_tickets", "refresh_clocks", "repair_clocks", "sla_summary",
    "adjust_policy", "targets_summary",
]

REPAIR_BATCH = 500
# The ticket's copy of its stopped clocks' outcome, for reports (migration 0019).
REPORT_COLUMNS = tuple(f"sla_{metric}_{what}" for metric in METRICS
                       for what in ("breached", "business_seconds"))


# --- calendars -----------------------------------------------------------------------


def build_calendar(timezone: str, week: dict, holidays: list) -> BusinessCalendar:
    """A BusinessCalendar from the stored JSON (see SlaCalendar); ValueError if invalid."""
    return BusinessCalendar(timezone, parse_week(week), parse_holidays(holidays))


def parse_week(week) -> dict:
    """{"0": [["09:00", "17:00"]]} -> {0: [("09:00", "17:00")]} (times checked later)."""
    if not isinstance(week, dict):
        raise ValueError("week must map weekdays (0 = Monday .. 6 = Sunday) to intervals")
    parsed = {}
    for key, intervals in week.items():
        text = str(key).strip()
        if not text.isdigit() or not 0 <= int(text) <= 6:
            raise ValueError(f"weekday {key!r} is outside 0..6 (0 = Monday .. 6 = Sunday)")
        if not isinstance(intervals, list):
            raise ValueError(f"weekday {key}: expected a list of [start, end] intervals")
        parsed[int(text)] = [tuple(i) if isinstance(i, list) else i for i in intervals]
    return parsed


def parse_holidays(holidays) -> list:
    """["2026-12-25", ["2026-12-24", "2026-12-31"]] -> dates and (first, last) pairs."""
    if not isinstance(holidays, list):
        raise ValueError("holidays must be a list of dates or [first, last] date ranges")
    parsed = []
    for item in holidays:
        try:
            if isinstance(item, str):
                parsed.append(date.fromisoformat(item))
            elif isinstance(item, list) and len(item) == 2 and all(isinstance(d, str) for d in item):
                parsed.append((date.fromisoformat(item[0]), date.fromisoformat(item[1])))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"holiday {item!r} is neither a date (YYYY-MM-DD) nor a "
                             "[first, last] pair of dates") from None
    return parsed


def format_week(calendar: BusinessCalendar) -> dict:
    """The calendar's normalised week as stored: {"0": [["09:00", "17:00"]], ...}."""
    return {str(day): [[_clock(start), _clock(end)] for start, end in intervals]
            for day, intervals in sorted(calendar.week.items())}


def format_holidays(calendar: BusinessCalendar) -> list:
    return [a.isoformat() if a == b else [a.isoformat(), b.isoformat()]
            for a, b in calendar.holidays]


def _clock(value: time | None) -> str:
    if value is None:
        return "24:00"
    text = value.strftime("%H:%M:%S" if value.second else "%H:%M")
    return text + (f".{value.microsecond:06d}" if value.microsecond else "")


_CALENDARS: dict[tuple[int, int], tuple[tuple, BusinessCalendar]] = {}


def calendar_for(row: SlaCalendar) -> BusinessCalendar:
    """The BusinessCalendar of ``row``, built once per (id, version) and process.

    BusinessCalendar caches its per-day arithmetic, so reusing one instance is what
    makes clocks cheap. The stored content is compared too, so a database whose ids
    started again (a restored backup, the test suite) never gets another's calendar.
    """
    key = (row.id, row.version)
    content = (row.timezone, row.week, row.holidays)
    cached = _CALENDARS.get(key)
    if cached is not None and cached[0] == content:
        return cached[1]
    calendar = build_calendar(*content)
    if len(_CALENDARS) > 256:
        _CALENDARS.clear()
    _CALENDARS[key] = (content, calendar)
    return calendar


# --- policies ------------------------------------------------------------------------


# One fingerprint for SLA policies and OLAs (servicedesk.sla.ola), so a ticket change
# checks both with one query. Services are in it because a catalogue service names the
# policy its tickets run under (catalogue_services.sla_policy_id; read as SQL: the SLA
# engine does not import the catalogue).
SLA_FINGERPRINT = refdata.fingerprint_sql("sla_policies", "sla_calendars",
                                          "catalogue_services", "group_olas")


class PolicySet(list):
    """Active policies in match order, and ``by_service``: service id -> its policy."""

    by_service: dict[int, SlaPolicy]


def active_policies() -> PolicySet:
    """Active policies in match order (position, then id), with their calendars.

    Read-only copies, cached per process while the tables' fingerprint holds (see
    servicedesk.refdata): one small query per call instead of loading them all.
    """
    return refdata.cached("sla_policies", SLA_FINGERPRINT, _load_active_policies)


def _load_active_policies() -> PolicySet:
    from servicedesk.tickets.service import driver_sql

    with db.session.no_autoflush:
        rows = db.session.scalars(
            select(SlaPolicy).where(SlaPolicy.active.is_(True))
            .options(joinedload(SlaPolicy.calendar))
            .order_by(SlaPolicy.position, SlaPolicy.id)
        )
        calendars = {}
        policies = PolicySet()
        for row in rows:
            if row.calendar_id not in calendars:
                calendars[row.calendar_id] = refdata.transient_copy(row.calendar)
            policies.append(refdata.transient_copy(row, calendar=calendars[row.calendar_id]))
        by_id = {policy.id: policy for policy in policies}
        policies.by_service = {
            service_id: by_id[policy_id]
            for service_id, policy_id, active in driver_sql(
                "SELECT id, sla_policy_id, active FROM catalogue_services "
                "WHERE sla_policy_id IS NOT NULL")
            if active and policy_id in by_id
        }
        return policies


def policy_matches(policy: SlaPolicy, ticket: Ticket) -> bool:
    """Every non-empty rule must hold: kind, priority, service, category (or subcategory)."""
    if policy.kinds and ticket.kind not in policy.kinds:
        return False
    if policy.priorities and ticket.priority not in policy.priorities:
        return False
    if policy.service_ids and ticket.service_id not in policy.service_ids:
        return False
    if policy.category_ids and not (ticket.category_id in policy.category_ids
                                    or ticket.subcategory_id in policy.category_ids):
        return False
    return True


def match_policy(ticket: Ticket, policies: list[SlaPolicy] | None = None) -> SlaPolicy | None:
    """The policy of ``ticket``'s catalogue service, if that service names an active one;
    else the first active policy (by position) whose rules match ``ticket``, if any."""
    policies = active_policies() if policies is None else policies
    by_service = getattr(policies, "by_service", {})
    if ticket.service_id is not None and ticket.service_id in by_service:
        return by_service[ticket.service_id]
    for policy in policies:
        if policy.active and policy_matches(policy, ticket):
            return policy
    return None


# --- the policy hook -----------------------------------------------------------------

POLICY_HOOK = "servicedesk_sla_policy"
_TARGET_KEYS = ("response_minutes", "resolution_minutes")


@dataclass(frozen=True)
class PolicyTargets:
    """What compute_clocks reads of a policy, with a plugin's targets in place of its
    own: the ORM policy is never changed for one ticket (it is shared by all of them)."""

    response_minutes: int | None
    resolution_minutes: int | None
    pause_statuses: tuple[str, ...]
    warning_percent: int


def _invalid_answer(answer, matched: SlaPolicy | None) -> str | None:
    """Why a servicedesk_sla_policy answer cannot be used; None when it can."""
    if not isinstance(answer, dict):
        return "not a dict"
    unknown = [key for key in answer if key not in ("policy", *_TARGET_KEYS)]
    if unknown:
        return f"unknown keys {unknown!r}"
    policy = answer.get("policy", matched)
    if policy is not None and not (isinstance(policy, SlaPolicy) and policy.id is not None):
        return "policy is neither a saved SlaPolicy nor None"
    for key in _TARGET_KEYS:
        if key in answer:
            value = answer[key]
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 1 <= value <= MAX_MINUTES:
                return f"{key} is not a whole number of minutes in 1..{MAX_MINUTES}"
            if policy is None:
                return f"{key} without a policy"
    return None


def adjust_policy(ticket: Ticket, matched: SlaPolicy | None
                  ) -> tuple[SlaPolicy | None, PolicyTargets | None, str | None]:
    """The plugins' say on ``ticket``'s policy: (policy, targets, adjusting plugin).

    Calls ``servicedesk_sla_policy`` with the policy the match rules chose; the first
    valid answer decides (see plugins.call_first_hook: a plugin that raises or answers
    nonsense is logged and skipped). The plugin is named only when its answer changed
    the policy or a target.
    """
    answer, plugin = call_first_hook(
        POLICY_HOOK, lambda a: _invalid_answer(a, matched), ticket=ticket, policy=matched)
    answer = answer or {}
    policy = answer.get("policy", matched)
    if policy is None:
        return None, None, None
    targets = PolicyTargets(
        response_minutes=answer.get("response_minutes", policy.response_minutes),
        resolution_minutes=answer.get("resolution_minutes", policy.resolution_minutes),
        pause_statuses=tuple(policy.pause_statuses or ()),
        warning_percent=policy.warning_percent,
    )
    adjusted = (policy.id != (matched.id if matched is not None else None)
                or (targets.response_minutes, targets.resolution_minutes)
                != (policy.response_minutes, policy.resolution_minutes))
    return policy, targets, plugin if adjusted else None


def _targets_text(minutes: dict, adjusted_by: str | None) -> str | None:
    """A ticket's targets as its audit trail shows them: "response 90 min, ... (vip_sla)"."""
    parts = [f"{metric} {minutes[metric]} min" for metric in METRICS
             if minutes.get(metric) is not None]
    if not parts:
        return None
    return ", ".join(parts) + (f" ({adjusted_by})" if adjusted_by else "")


# --- clocks --------------------------------------------------------------------------


def refresh_changed_tickets(hooks: list[tuple[str, dict]]) -> None:
    """Refresh the clocks of every ticket named by ``hooks`` (commit_and_notify's)."""
    changed: dict[int, tuple[Ticket, User | None]] = {}
    for _name, kwargs in hooks:
        ticket = kwargs.get("ticket")
        if isinstance(ticket, Ticket) and id(ticket) not in changed:
            changed[id(ticket)] = (ticket, kwargs.get("actor"))
    if not changed:
        return
    with db.session.no_autoflush:
        policies = active_policies()
        for ticket, actor in changed.values():
            refresh_clocks(ticket, actor, policies=policies)
        from servicedesk.sla.ola import refresh_olas  # (ola imports this module)

        refresh_olas([ticket for ticket, _actor in changed.values()])


def refresh_clocks(ticket: Ticket, actor: User | None, *, policies=None, history=None,
                   now: datetime | None = None, verify: bool = False) -> bool:
    """Recompute ``ticket``'s clock rows and SLA columns in the current transaction.

    Matches the policy, rebuilds both clocks from the ticket's history and writes what
    differs; a change of policy is audited (``sla_policy``). ``history``: the ticket's
    audit entries, when the caller loaded them in bulk; ``verify``: do not trust that
    a ticket without a policy has no clock rows (repair). Returns whether anything
    changed. Does not commit.
    """
    now = now or types.utcnow()
    policy = match_policy(ticket, active_policies() if policies is None else policies)
    old_policy_id = ticket.sla_policy_id
    old_adjusted_by = ticket.sla_adjusted_by
    with db.session.no_autoflush:
        if inspect(ticket).pending:
            db.session.flush([ticket])
        policy, targets, adjusted_by = adjust_policy(ticket, policy)
        if old_policy_id is None and not verify:
            # Clock rows exist only under a policy (repair checks it): nothing to load.
            existing = dict.fromkeys(METRICS)
        else:
            existing = _existing_clocks(ticket)
        old_minutes = {metric: row.target_seconds // 60
                       for metric, row in existing.items() if row is not None}
        if policy is None:
            states = dict.fromkeys(METRICS)
        else:
            entries = _history(ticket) if history is None else history
            events = events_from_history(ticket, entries)
            calendar = calendar_for(policy.calendar)
            states = compute_clocks(ticket, events, targets, calendar, now)
        changed = False
        rows = []
        # reports: each clock's outcome once stopped, on the ticket row (NULL otherwise)
        outcome = dict.fromkeys(REPORT_COLUMNS)
        for metric in METRICS:
            row, state = existing[metric], states[metric]
            if state is None:
                if row is not None:
                    db.session.delete(row)
                    changed = True
                set_committed_value(ticket, f"{metric}_clock", None)
                continue
            values = {"policy_id": policy.id, **state.row_values(),
                      # reports: business time the clock ran, once it stopped
                      "elapsed_seconds": stopped_seconds(state, calendar)}
            if state.met_at is not None:
                outcome[f"sla_{metric}_breached"] = state.breached_at is not None
                outcome[f"sla_{metric}_business_seconds"] = values["elapsed_seconds"]
            if row is None:
                row = SlaClock(ticket_id=ticket.id, metric=metric, **values)
                db.session.add(row)
                changed = True
            else:
                for attr, value in values.items():
                    if getattr(row, attr) != value:
                        setattr(row, attr, value)
                        changed = True
            set_committed_value(ticket, f"{metric}_clock", row)
            rows.append(row)
        # --- escalation: each clock's next step instant, and its job after the commit ---
        from servicedesk.sla.escalation import update_next_steps

        changed = update_next_steps(ticket, policy, rows) or changed
        # --- end escalation ---
        policy_id = policy.id if policy is not None else None
        due = min((r.due_at for r in rows if r.met_at is None and r.due_at is not None),
                  default=None)
        if ((policy_id, due, adjusted_by) != (old_policy_id, ticket.sla_due_at, old_adjusted_by)
                or any(getattr(ticket, k) != v for k, v in outcome.items())):
            table = Ticket.__table__
            db.session.execute(
                update(table).where(table.c.id == ticket.id)
                # updated_at set to itself: its onupdate must not fire for bookkeeping
                .values(sla_policy_id=policy_id, sla_due_at=due, sla_adjusted_by=adjusted_by,
                        updated_at=table.c.updated_at, **outcome)
            )
            set_committed_value(ticket, "sla_policy_id", policy_id)
            set_committed_value(ticket, "sla_due_at", due)
            set_committed_value(ticket, "sla_adjusted_by", adjusted_by)
            for key, value in outcome.items():
                set_committed_value(ticket, key, value)
            changed = True
        set_committed_value(ticket, "sla_policy", policy)
        if policy_id != old_policy_id:
            old = _policy_name(old_policy_id, policies)
            record(ticket, actor, "sla_policy", "sla_policy", old,
                   policy.name if policy is not None else None, at=now)
        # Targets a plugin set (or stopped setting) are audited too; a plain switch of
        # policy is already told by its sla_policy entry.
        if adjusted_by or old_adjusted_by or policy_id == old_policy_id:
            new_minutes = {row.metric: row.target_seconds // 60 for row in rows}
            old_text = _targets_text(old_minutes, old_adjusted_by)
            new_text = _targets_text(new_minutes, adjusted_by)
            if old_text != new_text:
                record(ticket, actor, "sla_targets", "sla_targets", old_text, new_text, at=now)
    return changed


def _existing_clocks(ticket: Ticket) -> dict[str, SlaClock | None]:
    unloaded = inspect(ticket).unloaded
    if not {"response_clock", "resolution_clock"} & unloaded:
        return {"response": ticket.response_clock, "resolution": ticket.resolution_clock}
    rows = {row.metric: row for row in db.session.scalars(
        select(SlaClock).where(SlaClock.ticket_id == ticket.id))}
    return {metric: rows.get(metric) for metric in METRICS}


def _history(ticket: Ticket) -> list:
    """The ticket's status entries: stored ones, then this unit of work's unsaved ones."""
    stored = list(db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.ticket_id == ticket.id, AuditEntry.field.in_(STATUS_FIELDS))
        .order_by(AuditEntry.id)
    ))
    pending = [obj for obj in db.session.new if isinstance(obj, AuditEntry)
               and obj.ticket_id == ticket.id and obj.field in STATUS_FIELDS]
    return stored + sorted(pending, key=lambda e: e.at)


def _policy_name(policy_id: int | None, policies) -> str | None:
    if policy_id is None:
        return None
    for policy in policies or ():
        if policy.id == policy_id:
            return policy.name
    old = db.session.get(SlaPolicy, policy_id)
    return old.name if old is not None else f"#{policy_id}"


def repair_clocks(batch: int = REPAIR_BATCH, now: datetime | None = None) -> tuple[int, int]:
    """Recompute every open ticket's clocks from its history; (changed, checked).

    In batches of ``batch`` tickets, each batch its own transaction (a ticket row lock
    on PostgreSQL while it is recomputed). Idempotent: a second run changes nothing
    unless time passed a due instant in between (breached_at is then recorded).
    """
    now = now or types.utcnow()
    policies = active_policies()
    changed = checked = 0
    last_id = 0
    while True:
        tickets = list(db.session.scalars(
            select(Ticket).where(Ticket.is_open == true(), Ticket.id > last_id)
            .options(joinedload(Ticket.response_clock), joinedload(Ticket.resolution_clock))
            .order_by(Ticket.id).limit(batch)
            .with_for_update(of=Ticket.__table__)
        ).unique())
        if not tickets:
            break
        history = defaultdict(list)
        for entry in db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.ticket_id.in_([t.id for t in tickets]),
                   AuditEntry.field.in_(STATUS_FIELDS))
            .order_by(AuditEntry.ticket_id, AuditEntry.id)
        ):
            history[entry.ticket_id].append(entry)
        from servicedesk.sla.ola import refresh_olas  # (ola imports this module)

        ola_changed = refresh_olas(tickets, now=now, verify=True)  # ids of those changed
        for ticket in tickets:
            checked += 1
            changed += refresh_clocks(ticket, None, policies=policies,
                                      history=history[ticket.id], now=now, verify=True) \
                or ticket.id in ola_changed
        db.session.commit()
        last_id = tickets[-1].id
        if len(tickets) < batch:
            break
    db.session.commit()
    return changed, checked


# --- reading -------------------------------------------------------------------------


def breaches_next(actor: User, limit: int = 20) -> list[Ticket]:
    """Open tickets ``actor`` may see whose SLA runs out soonest (overdue first).

    One query, read in order from ix_tickets_sla_due (COALESCE(sla_due_at, never),
    priority, created_at, id WHERE is_open); stops after ``limit`` rows.
    """
    if actor is None or not actor.is_staff:
        raise Forbidden(_("Only IT staff see what breaches next."))
    return list(db.session.scalars(
        select(Ticket)
        .where(visible_tickets_clause(actor, Ticket), Ticket.is_open == true(),
               Ticket.sla_due_rank < SLA_NEVER)
        .options(joinedload(Ticket.group), joinedload(Ticket.assignee))
        .order_by(Ticket.sla_due_rank, Ticket.priority, Ticket.created_at, Ticket.id)
        .limit(limit)
    ))


def clock_breached(clock: SlaClock | None, now: datetime | None = None) -> bool:
    """Whether ``clock`` ran past its due instant (stored, or seen now)."""
    if clock is None:
        return False
    if clock.breached_at is not None:
        return True
    if clock.due_at is None:
        return False
    if clock.met_at is not None:
        return clock.met_at > clock.due_at
    return clock.due_at <= (now or types.utcnow())


def sla_state(ticket: Ticket, now: datetime | None = None) -> str | None:
    """The queue's colour: "breached", "warning" (past warning_at) or "ok"; None: no SLA."""
    if ticket.sla_policy_id is None:
        return None
    now = now or types.utcnow()
    clocks = [c for c in (ticket.response_clock, ticket.resolution_clock) if c is not None]
    if not clocks:
        return None
    if any(clock_breached(c, now) for c in clocks):
        return "breached"
    if any(c.met_at is None and c.warning_at is not None and c.warning_at <= now
           for c in clocks):
        return "warning"
    return "ok"


def sla_summary(ticket: Ticket, now: datetime | None = None) -> dict:
    """The API's ``sla`` object of a ticket (no queries for lists that joined the clocks)."""
    if ticket.sla_policy_id is None:
        return {"policy": None, "targets": None, "response": None, "resolution": None}
    now = now or types.utcnow()
    policy = ticket.sla_policy
    calendar = calendar_for(policy.calendar) if policy is not None else None
    response, resolution = ticket.response_clock, ticket.resolution_clock
    return {
        "policy": policy.name if policy is not None else None,
        "targets": targets_summary(response, resolution, ticket.sla_adjusted_by),
        "response": clock_summary(response, calendar, now),
        "resolution": clock_summary(resolution, calendar, now),
    }


def targets_summary(response, resolution, adjusted_by: str | None) -> dict:
    """The targets the clocks run on, in business minutes, and the plugin that set them
    (``adjusted_by``; None: the policy's own). Read from the clock rows, which keep the
    target they were computed with."""
    return {
        "response_minutes": response.target_seconds // 60 if response is not None else None,
        "resolution_minutes": (resolution.target_seconds // 60
                               if resolution is not None else None),
        "adjusted_by": adjusted_by,
    }


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def clock_summary(clock: SlaClock | None, calendar, now: datetime) -> dict | None:
    """A clock as the API shows it; ``clock`` may be a row or anything with its columns."""
    if clock is None:
        return None
    return {
        "due_at": iso(clock.due_at),
        "warning_at": iso(clock.warning_at),
        "elapsed_percent": elapsed_percent(clock, calendar, now) if calendar else None,
        "paused": clock.paused_since is not None and clock.met_at is None,
        "breached": clock_breached(clock, now),
        "met_at": iso(clock.met_at),
    }
