"""Managing SLA calendars and policies: staff read, admins write (``actor=None``: the
system, e.g. ``servicedesk demo``). Every refusal names its field; nothing changes.

Every committed edit queues a repair of the open tickets' clocks (one per burst of
edits, outside the request: ``servicedesk.sla.maintenance``); clocks are recomputed
from history, so nothing is lost either way.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.sla.calendar import BusinessCalendar
from servicedesk.sla.maintenance import request_repair
from servicedesk.sla.models import DEFAULT_PAUSE_STATUSES, DEFAULT_WARNING_PERCENT
from servicedesk.sla.models import SlaCalendar, SlaPolicy
from servicedesk.sla.service import format_holidays, format_week, parse_holidays, parse_week
from servicedesk.tickets.models import Category
from servicedesk.tickets.workflow import WORKFLOWS

CALENDAR_FIELDS = ("name", "timezone", "week", "holidays")
POLICY_FIELDS = ("name", "position", "active", "kinds", "priorities", "service_ids",
                 "category_ids", "response_minutes", "resolution_minutes", "calendar_id",
                 "pause_statuses", "warning_percent", "steps")


def _may_read(actor: User | None) -> None:
    if actor is not None and not actor.is_staff:
        raise Forbidden(_("Only IT staff see SLA calendars and policies."))


def _may_write(actor: User | None) -> None:
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins change SLA calendars and policies."))


def _check_version(row, version, what: str) -> None:
    if version is None:
        raise ValidationError(_("The version you last read is required."),
                              fields={"version": [_("Missing data for required field.")]})
    if version != row.version:
        raise Conflict(
            _("The %(what)s %(name)s was changed by someone else (version %(current)s, "
              "you sent %(sent)s); reload it and apply your change again.",
              what=what, name=repr(row.name), current=row.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=row.version)]},
            code="stale_version",
        )


def _commit(what: str) -> None:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(_("Someone else changed this %(what)s at the same moment; reload and "
                         "retry.", what=what),
                       fields={"version": [_("Stale.")]}, code="stale_version") from None
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_("A %(what)s with that name exists.", what=what),
                       fields={"name": [_("Already exists.")]},
                       code="duplicate_name") from None
    request_repair()  # open tickets' clocks follow the edit (sla.maintenance)


def _unique_name(model, name: str, what: str, row_id: int | None = None) -> None:
    clash = db.session.scalars(select(model).where(model.name == name)).first()
    if clash is not None and clash.id != row_id:
        raise Conflict(_("A %(what)s named %(name)s exists.", what=what, name=repr(name)),
                       fields={"name": [_("Already exists.")]},
                       code="duplicate_name")


# --- calendars -----------------------------------------------------------------------


def list_calendars(actor: User | None) -> list[SlaCalendar]:
    _may_read(actor)
    return list(db.session.scalars(select(SlaCalendar).order_by(SlaCalendar.name)))


def get_calendar(actor: User | None, calendar_id: int) -> SlaCalendar:
    _may_read(actor)
    row = db.session.get(SlaCalendar, calendar_id)
    if row is None:
        raise NotFound(_("No SLA calendar %(id)s.", id=calendar_id))
    return row


def validate_calendar(timezone, week, holidays) -> BusinessCalendar:
    """The BusinessCalendar these stored values make, or a ValidationError naming each
    bad field with BusinessCalendar's own reason."""
    errors = {}
    try:
        BusinessCalendar._zone(timezone)
    except ValueError as exc:
        errors["timezone"] = [str(exc)]
    try:
        BusinessCalendar._validate_week(parse_week(week))
    except ValueError as exc:
        errors["week"] = [str(exc)]
    try:
        BusinessCalendar._validate_holidays(parse_holidays(holidays))
    except ValueError as exc:
        errors["holidays"] = [str(exc)]
    if not errors:
        try:
            return BusinessCalendar(timezone, parse_week(week), parse_holidays(holidays))
        except ValueError as exc:  # not expected once each part passed; still a 422
            errors["week"] = [str(exc)]
    raise ValidationError(_("The calendar is not valid."), fields=errors)


def create_calendar(actor: User | None, data: dict) -> SlaCalendar:
    _may_write(actor)
    missing = [f for f in ("name", "timezone", "week") if data.get(f) in (None, "")]
    if missing:
        raise ValidationError(_("A calendar needs a name, a time zone and a week."),
                              fields={f: [_("Missing data for required field.")] for f in missing})
    name = data["name"].strip()
    calendar = validate_calendar(data["timezone"], data["week"], data.get("holidays") or [])
    _unique_name(SlaCalendar, name, "calendar")
    row = SlaCalendar(name=name, timezone=data["timezone"], week=format_week(calendar),
                      holidays=format_holidays(calendar))
    db.session.add(row)
    _commit("calendar")
    return row


def update_calendar(actor: User | None, calendar_id: int, data: dict) -> SlaCalendar:
    _may_write(actor)
    row = get_calendar(actor, calendar_id)
    _check_version(row, data.get("version"), "calendar")
    values = {f: data[f] for f in CALENDAR_FIELDS if f in data}
    if values.get("name") is not None:
        values["name"] = values["name"].strip()
        _unique_name(SlaCalendar, values["name"], "calendar", row.id)
    for field in ("name", "timezone", "week"):
        if field in values and values[field] in (None, ""):
            raise ValidationError(_("The calendar's %(field)s cannot be empty.", field=field),
                                  fields={field: [_("Field may not be null.")]})
    calendar = validate_calendar(values.get("timezone", row.timezone), values.get("week", row.week),
                                 values.get("holidays", row.holidays) or [])
    row.name = values.get("name", row.name)
    row.timezone = values.get("timezone", row.timezone)
    if format_week(calendar) != row.week:
        row.week = format_week(calendar)
    if format_holidays(calendar) != row.holidays:
        row.holidays = format_holidays(calendar)
    _commit("calendar")
    return row


# --- policies ------------------------------------------------------------------------


def list_policies(actor: User | None) -> list[SlaPolicy]:
    _may_read(actor)
    return list(db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.id)))


def get_policy(actor: User | None, policy_id: int) -> SlaPolicy:
    _may_read(actor)
    row = db.session.get(SlaPolicy, policy_id)
    if row is None:
        raise NotFound(_("No SLA policy %(id)s.", id=policy_id))
    return row


def pause_status_choices(kinds) -> set[str]:
    """The pause statuses valid for ``kinds`` (all kinds if empty): every open status of
    their workflows, and "status:reason" for the pending reasons."""
    choices = set()
    for kind in kinds or WORKFLOWS:
        workflow = WORKFLOWS[kind]
        for status in workflow.states:
            if status in workflow.done_states:
                continue  # a done status stops the clock already: it cannot pause it
            choices.add(status)
            if status == "pending":
                choices.update(f"{status}:{reason}" for reason in workflow.pending_reasons)
    return choices


def _validate_policy(values: dict) -> None:
    errors = {}
    kinds = values.get("kinds") or []
    unknown = [k for k in kinds if k not in WORKFLOWS]
    if unknown:
        errors["kinds"] = [_("Unknown ticket kind(s): %(unknown)s; known: %(known)s.",
                             unknown=", ".join(map(repr, unknown)),
                             known=", ".join(sorted(WORKFLOWS)))]
    else:
        choices = pause_status_choices(kinds)
        bad = [s for s in values.get("pause_statuses") or [] if s not in choices]
        if bad:
            errors["pause_statuses"] = [
                _("Unknown or non-pausing status(es): %(unknown)s; use one of: %(choices)s.",
                  unknown=", ".join(map(repr, bad)), choices=", ".join(sorted(choices)))]
    if values.get("calendar_id") is not None \
            and db.session.get(SlaCalendar, values["calendar_id"]) is None:
        errors["calendar_id"] = [_("Unknown calendar.")]
    category_ids = values.get("category_ids") or []
    if category_ids:
        found = set(db.session.scalars(select(Category.id).where(Category.id.in_(category_ids))))
        missing = [str(c) for c in category_ids if c not in found]
        if missing:
            errors["category_ids"] = [_("Unknown categories: %(ids)s.", ids=", ".join(missing))]
    # --- escalation steps: normalised in place (servicedesk.sla.escalation) ---
    if values.get("steps") is not None:
        from servicedesk.sla.steps import check_steps

        values["steps"], step_errors = check_steps(
            values["steps"], values.get("response_minutes"), values.get("resolution_minutes"))
        errors.update(step_errors)
    if errors:
        raise ValidationError(_("The policy is not valid."), fields=errors)


def _unique(values: list) -> list:
    return list(dict.fromkeys(values))


def create_policy(actor: User | None, data: dict) -> SlaPolicy:
    _may_write(actor)
    missing = [f for f in ("name", "calendar_id") if data.get(f) in (None, "")]
    if missing:
        raise ValidationError(_("A policy needs a name and a calendar."),
                              fields={f: [_("Missing data for required field.")] for f in missing})
    values = {
        "kinds": [], "priorities": [], "service_ids": [], "category_ids": [],
        "pause_statuses": list(DEFAULT_PAUSE_STATUSES), "warning_percent": DEFAULT_WARNING_PERCENT,
        "active": True, "response_minutes": None, "resolution_minutes": None, "steps": [],
        **{f: data[f] for f in POLICY_FIELDS if f in data},
    }
    values["name"] = values["name"].strip()
    _validate_policy(values)
    _unique_name(SlaPolicy, values["name"], "policy")
    if values.get("position") is None:
        last = db.session.scalar(select(func.max(SlaPolicy.position)))
        values["position"] = 0 if last is None else last + 1
    for key in ("kinds", "priorities", "service_ids", "category_ids", "pause_statuses"):
        values[key] = _unique(values[key])
    row = SlaPolicy(**values)
    db.session.add(row)
    _commit("policy")
    return row


def update_policy(actor: User | None, policy_id: int, data: dict) -> SlaPolicy:
    _may_write(actor)
    row = get_policy(actor, policy_id)
    _check_version(row, data.get("version"), "policy")
    changes = {f: data[f] for f in POLICY_FIELDS if f in data}
    for field in ("name", "calendar_id", "position", "active", "warning_percent", "steps"):
        if field in changes and changes[field] in (None, ""):
            raise ValidationError(_("The policy's %(field)s cannot be empty.", field=field),
                                  fields={field: [_("Field may not be null.")]})
    if "name" in changes:
        changes["name"] = changes["name"].strip()
        _unique_name(SlaPolicy, changes["name"], "policy", row.id)
    merged = {f: getattr(row, f) for f in POLICY_FIELDS} | changes
    _validate_policy(merged)
    if "steps" in changes:
        changes["steps"] = merged["steps"]  # as normalised by the validation
    for key in ("kinds", "priorities", "service_ids", "category_ids", "pause_statuses"):
        if key in changes:
            changes[key] = _unique(changes[key])
    for attr, value in changes.items():
        if getattr(row, attr) != value:
            setattr(row, attr, value)
    _commit("policy")
    return row
