"""SLA clocks computed from a ticket's history: pure functions, no Flask, no database.

A clock is never advanced step by step; its whole state is recomputed from the facts
that cannot drift — when the ticket was created, its status changes (with their
pending reasons) and its first public reply by staff — under the ticket's current
policy and calendar. Recomputing twice gives the same row; a changed policy or
calendar simply gives the row it would always have had, so a priority change keeps
all elapsed and paused time (the clock is never restarted) and a calendar edit
moves due dates without losing anything.

The rules:

* Both clocks start when the ticket is created.
* Time in a *pause* status of the policy ("pending", or "pending:awaiting_requester"
  for one pending reason) does not count: its business time is excluded and the due
  instant moves out by as much.
* The **response** clock stops for good at the first public reply by staff
  (``ticket.first_response_at``), or when the ticket first reaches a done state
  (resolved, cancelled...) without one: a resolution answers the requester too.
* The **resolution** clock stops when the ticket reaches a done state and resumes if
  it is reopened, keeping the time elapsed before; business time spent resolved
  before a reopen is excluded like a pause.
* ``due_at`` is the instant at which the clock's running business time reaches the
  target; ``warning_at`` the same for ``warning_percent`` of it. While paused, a due
  instant not yet reached is unknown (NULL). For a stopped (met) clock it is the
  instant it would have been due, so ``met_at`` can be compared with it.
* ``breached_at`` is ``due_at`` once the clock has run past it (at ``now``, or before
  it stopped).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from servicedesk.sla.calendar import BusinessCalendar
from servicedesk.tickets.workflow import WORKFLOWS

RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"
STATUS_FIELDS = ("status", "pending_reason")


@dataclass(frozen=True)
class StatusChange:
    """From ``at`` on, the ticket was in ``status`` (with ``pending_reason``)."""

    at: datetime
    status: str
    pending_reason: str | None = None


@dataclass(frozen=True)
class ClockState:
    metric: str
    target: timedelta
    started_at: datetime
    # Business time excluded by finished pauses (and resolved spells before a reopen).
    paused: timedelta
    paused_since: datetime | None
    due_at: datetime | None
    warning_at: datetime | None
    met_at: datetime | None
    breached_at: datetime | None

    def row_values(self) -> dict:
        """The ``sla_clocks`` columns this state stands for."""
        return {
            "target_seconds": int(self.target.total_seconds()),
            "started_at": self.started_at,
            "paused_seconds": int(self.paused // timedelta(seconds=1)),
            "paused_since": self.paused_since,
            "due_at": self.due_at,
            "warning_at": self.warning_at,
            "met_at": self.met_at,
            "breached_at": self.breached_at,
        }


def pauses(pause_statuses: Iterable[str], status: str, pending_reason: str | None) -> bool:
    """Whether ``status`` (with ``pending_reason``) is one of the policy's pause statuses."""
    rules = set(pause_statuses)
    return status in rules or (pending_reason is not None
                               and f"{status}:{pending_reason}" in rules)


def events_from_history(ticket, entries: Sequence) -> list[StatusChange]:
    """The ticket's status timeline from its audit entries (oldest first).

    ``entries`` are audit entries (``at``, ``field``, ``old_value``, ``new_value``) in
    the order they were written; those of other fields are ignored. Entries written at
    the same instant are one change (a move to pending and its reason). The status at
    creation is the old value of the first status entry (or the current status if the
    status never changed).
    """
    entries = [e for e in entries if e.field in STATUS_FIELDS]
    first = {}
    for entry in entries:
        first.setdefault(entry.field, entry.old_value)
    status = first.get("status", ticket.status)
    reason = first.get("pending_reason", ticket.pending_reason)
    events = [StatusChange(ticket.created_at, status, reason)]
    for at, group in groupby(entries, key=lambda e: e.at):
        for entry in group:
            if entry.field == "status":
                status = entry.new_value
            else:
                reason = entry.new_value
        if (status, reason) != (events[-1].status, events[-1].pending_reason):
            events.append(StatusChange(at, status, reason))
    return events


def compute_clocks(ticket, events: Sequence[StatusChange], policy, calendar: BusinessCalendar,
                   now: datetime) -> dict[str, ClockState | None]:
    """Both clocks of ``ticket`` at ``now``: {"response": state | None, "resolution": ...}.

    ``ticket`` needs ``kind``, ``created_at`` and ``first_response_at``; ``events`` is
    its status timeline (see :func:`events_from_history`), ``policy`` gives
    ``response_minutes``, ``resolution_minutes`` (None: no clock), ``pause_statuses``
    and ``warning_percent``. Pure: the same arguments always give the same answer.
    """
    done = WORKFLOWS[ticket.kind].done_states
    start = ticket.created_at
    timeline = _timeline(events, start, now)
    pause = frozenset(policy.pause_statuses or ())
    result: dict[str, ClockState | None] = {"response": None, "resolution": None}

    if policy.response_minutes:
        # Stops at the first public reply by staff, or on reaching a done state.
        stops = [at for at, _end, status, _reason in timeline if status in done]
        if ticket.first_response_at is not None:
            stops.append(max(ticket.first_response_at, start))
        met = min(stops) if stops else None
        pieces = []
        for a, b, status, reason in _cut(timeline, met, now):
            state = (STOPPED if met is not None and a >= met
                     else PAUSED if pauses(pause, status, reason) else RUNNING)
            pieces.append((a, b, state))
        result["response"] = _walk("response", pieces, policy.response_minutes,
                                   policy.warning_percent, calendar, start, now)

    if policy.resolution_minutes:
        pieces = [(a, b, STOPPED if status in done
                   else PAUSED if pauses(pause, status, reason) else RUNNING)
                  for a, b, status, reason in timeline]
        result["resolution"] = _walk("resolution", pieces, policy.resolution_minutes,
                                     policy.warning_percent, calendar, start, now)
    return result


def elapsed_percent(clock, calendar: BusinessCalendar, now: datetime) -> float:
    """How much of its target ``clock`` (a row or ClockState-like object) has used at
    ``now``: running business time over the target, in percent (may exceed 100)."""
    target = clock.target_seconds
    if not target:
        return 0.0
    end = clock.met_at or clock.paused_since or now
    if end < clock.started_at:
        return 0.0
    spent = calendar.elapsed(clock.started_at, end).total_seconds() - clock.paused_seconds
    return round(max(0.0, spent) * 100 / target, 1)


def stopped_seconds(state, calendar: BusinessCalendar) -> int | None:
    """The business time a stopped clock ran, in whole seconds (None while it runs).

    Stored as ``sla_clocks.elapsed_seconds``: reports aggregate it in the database
    (medians of response and resolution time in business hours) without a calendar.
    """
    if state.met_at is None:
        return None
    spent = calendar.elapsed(state.started_at, state.met_at) - state.paused
    return max(0, int(spent // timedelta(seconds=1)))


# --- internals ------------------------------------------------------------------------


def _timeline(events: Sequence[StatusChange], start: datetime, now: datetime):
    """[(from, to, status, reason)] covering [start, now]; changes after now are ignored
    (not yet happened), changes before ``start`` count from ``start``."""
    if not events:
        raise ValueError("a ticket's timeline needs at least its status at creation")
    points = [(max(e.at, start), e.status, e.pending_reason) for e in events
              if e.at <= now]
    if not points:
        points = [(start, events[0].status, events[0].pending_reason)]
    points[0] = (start, points[0][1], points[0][2])
    end = max(now, start)
    return [(at, points[i + 1][0] if i + 1 < len(points) else end, status, reason)
            for i, (at, status, reason) in enumerate(points)]


def _cut(timeline, instant: datetime | None, now: datetime):
    """``timeline`` with the piece holding ``instant`` split there."""
    if instant is None or instant > now:
        return timeline
    pieces = []
    for a, b, status, reason in timeline:
        if a < instant < b:
            pieces += [(a, instant, status, reason), (instant, b, status, reason)]
        else:
            pieces.append((a, b, status, reason))
    return pieces


def _merge(pieces):
    """Adjacent pieces of one state as one. An instant-long piece is dropped (nothing
    happened in it) unless it is the last: a change made right now decides the
    clock's current state."""
    merged = []
    for i, (a, b, state) in enumerate(pieces):
        if b == a and i != len(pieces) - 1:
            continue
        if merged and merged[-1][2] == state:
            merged[-1] = (merged[-1][0], b, state)
        else:
            merged.append((a, b, state))
    return merged


def _add(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime | None:
    try:
        return calendar.add(start, duration)
    except OverflowError:  # beyond the year 9999: never, for our purposes
        return None


def _walk(metric: str, pieces, minutes: int, warning_percent: int,
          calendar: BusinessCalendar, start: datetime, now: datetime) -> ClockState:
    target = timedelta(minutes=minutes)
    left = {"due": target, "warning": target * warning_percent // 100}
    found: dict[str, datetime | None] = {"due": None, "warning": None}
    excluded = timedelta(0)
    pieces = _merge(pieces)
    last = len(pieces) - 1
    for i, (a, b, state) in enumerate(pieces):
        if state != RUNNING:
            if i != last:
                excluded += calendar.elapsed(a, b)
            continue
        span = None if i == last else calendar.elapsed(a, b)
        for key in ("due", "warning"):
            if found[key] is not None:
                continue
            if span is None or span >= left[key]:
                found[key] = _add(calendar, a, left[key])
            else:
                left[key] -= span
    a_last, _b, final = pieces[last]
    paused_since = a_last if final == PAUSED else None
    met_at = a_last if final == STOPPED else None
    if met_at is not None:  # when it would have been due, had it not stopped
        for key in found:
            if found[key] is None:
                found[key] = _add(calendar, met_at, left[key])
    due = found["due"]
    breached = due is not None and (due < met_at if met_at is not None else due <= now)
    return ClockState(
        metric=metric, target=target, started_at=start, paused=excluded,
        paused_since=paused_since, due_at=due, warning_at=found["warning"], met_at=met_at,
        breached_at=due if breached else None,
    )
