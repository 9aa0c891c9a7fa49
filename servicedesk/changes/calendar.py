"""The change calendar: planned changes and freeze windows over a period, and the
freeze rule (a normal or standard change may not be planned inside an active freeze
window; an emergency change may)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from servicedesk.changes import admin
from servicedesk.changes.models import Change, FreezeWindow
from servicedesk.errors import Conflict, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User

# Not on the calendar: what will never happen.
OFF_CALENDAR = ("rejected", "cancelled")
MAX_SPAN = timedelta(days=100)


def overlapping_freezes(start: datetime, end: datetime) -> list[FreezeWindow]:
    return list(db.session.scalars(
        select(FreezeWindow).where(FreezeWindow.active.is_(True), FreezeWindow.starts_at < end,
                                   FreezeWindow.ends_at > start)
        .order_by(FreezeWindow.starts_at)))


def check_freeze(change: Change) -> None:
    """Refuse (409 naming planned_start) a non-emergency change planned in a freeze."""
    if change.change_type == "emergency" or change.planned_start is None \
            or change.planned_end is None:
        return
    windows = overlapping_freezes(change.planned_start, change.planned_end)
    if windows:
        names = ", ".join(w.name for w in windows)
        raise Conflict(
            _("%(number)s is planned inside the freeze window %(names)s; only emergency "
              "changes may be made then.", number=change.number, names=names),
            fields={"planned_start": [_("Inside the freeze window %(names)s.", names=names)]},
            code="change_freeze")


def check_window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ValidationError(_("A change ends after it starts."),
                              fields={"planned_end": [_("Must be after planned_start.")]})


def calendar(actor: User, start: datetime, end: datetime) -> dict:
    """Changes planned to overlap [start, end) and the freeze windows in it."""
    admin.check_staff(actor)
    if end <= start or end - start > MAX_SPAN:
        raise ValidationError(_("The period must end after it starts, within 100 days."),
                              fields={"end": [_("After start, at most 100 days later.")]})
    changes = list(db.session.scalars(
        select(Change).options(joinedload(Change.group), joinedload(Change.assignee))
        .where(Change.planned_start < end, Change.planned_end > start,
               Change.status.not_in(OFF_CALENDAR))
        .order_by(Change.planned_start, Change.id)))
    return {"start": start, "end": end, "changes": changes,
            "freeze_windows": admin.list_freeze_windows(None, start, end, active_only=True)}


def period(view: str, anchor: date) -> tuple[datetime, datetime, date, date]:
    """(start, end, previous anchor, next anchor) of the month or week around ``anchor``."""
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        last = first + timedelta(days=7)
        prev_anchor, next_anchor = first - timedelta(days=7), last
    else:
        first = anchor.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
        prev_anchor, next_anchor = (first - timedelta(days=1)).replace(day=1), last
    as_dt = lambda d: datetime.combine(d, time(), tzinfo=timezone.utc)  # noqa: E731
    return as_dt(first), as_dt(last), prev_anchor, next_anchor


def days(start: datetime, end: datetime, entries: dict) -> list[dict]:
    """The calendar as a list of days, each with the changes and freezes on it."""
    result = []
    day = start
    while day < end:
        nxt = day + timedelta(days=1)
        result.append({
            "date": day.date(),
            "changes": [c for c in entries["changes"]
                        if c.planned_start < nxt and c.planned_end > day],
            "freezes": [w for w in entries["freeze_windows"]
                        if w.starts_at < nxt and w.ends_at > day],
        })
        day = nxt
    return result
