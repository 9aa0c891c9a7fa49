"""What admins manage for change management: standard-change templates and freeze
windows (the risk model is in ``changes.risk``). Staff read them; admins write."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from servicedesk.changes.models import ChangeTemplate, FreezeWindow
from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.types import utcnow

TEMPLATE_FIELDS = ("name", "description", "implementation_plan", "backout_plan", "test_plan",
                   "active")
WINDOW_FIELDS = ("name", "reason", "starts_at", "ends_at", "active")


def check_staff(actor: User) -> None:
    """Change management does not exist for requesters (404, like a ticket they may not
    see)."""
    if actor is None or not actor.is_staff:
        raise NotFound(_("No such page."))


def _check_admin(actor: User, what: str) -> None:
    check_staff(actor)
    if actor.role != "admin":
        raise Forbidden(_("Only admins manage %(what)s.", what=what))


def _check_version(row, version) -> None:
    if version is None:
        raise ValidationError(_("The version you last read is required."),
                              fields={"version": [_("Missing data for required field.")]})
    if version != row.version:
        raise Conflict(_("Someone else changed it (version %(current)s, you sent %(sent)s); "
                         "reload it.", current=row.version, sent=version),
                       fields={"version": [_("Stale: the current version is %(current)s.",
                                             current=row.version)]},
                       code="stale_version")


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError(_("That name is taken."),
                              fields={"name": [_("Already used.")]}) from None


# --- templates -----------------------------------------------------------------------


def list_templates(actor: User, active_only: bool = False) -> list[ChangeTemplate]:
    check_staff(actor)
    query = select(ChangeTemplate).order_by(ChangeTemplate.name)
    if active_only:
        query = query.where(ChangeTemplate.active.is_(True))
    return list(db.session.scalars(query))


def get_template(actor: User, template_id: int, field: str | None = None) -> ChangeTemplate:
    check_staff(actor)
    template = db.session.get(ChangeTemplate, template_id)
    if template is None:
        if field:
            raise ValidationError(_("No such template."), fields={field: [_("Unknown template.")]})
        raise NotFound(_("No such template."))
    return template


def create_template(actor: User, data: dict) -> ChangeTemplate:
    _check_admin(actor, _("change templates"))
    template = ChangeTemplate(created_at=utcnow(), active=data.get("active", True),
                              **{k: data.get(k, "") for k in TEMPLATE_FIELDS if k != "active"})
    db.session.add(template)
    _commit()
    return template


def update_template(actor: User, template_id: int, data: dict) -> ChangeTemplate:
    _check_admin(actor, _("change templates"))
    template = get_template(actor, template_id)
    _check_version(template, data.get("version"))
    for key in TEMPLATE_FIELDS:
        if key in data:
            setattr(template, key, data[key])
    _commit()
    return template


# --- freeze windows ------------------------------------------------------------------


def list_freeze_windows(actor: User | None, start=None, end=None,
                        active_only: bool = False) -> list[FreezeWindow]:
    """Freeze windows (overlapping [start, end) when given), earliest first."""
    if actor is not None:
        check_staff(actor)
    query = select(FreezeWindow).order_by(FreezeWindow.starts_at, FreezeWindow.id)
    if start is not None:
        query = query.where(FreezeWindow.ends_at > start)
    if end is not None:
        query = query.where(FreezeWindow.starts_at < end)
    if active_only:
        query = query.where(FreezeWindow.active.is_(True))
    return list(db.session.scalars(query))


def _check_span(starts_at, ends_at) -> None:
    if starts_at is None or ends_at is None or ends_at <= starts_at:
        raise ValidationError(_("A freeze window ends after it starts."),
                              fields={"ends_at": [_("Must be after starts_at.")]})


def create_freeze_window(actor: User, data: dict) -> FreezeWindow:
    _check_admin(actor, _("freeze windows"))
    _check_span(data.get("starts_at"), data.get("ends_at"))
    window = FreezeWindow(name=data["name"], reason=data.get("reason", ""),
                          starts_at=data["starts_at"], ends_at=data["ends_at"],
                          active=data.get("active", True), created_by_id=actor.id,
                          created_at=utcnow())
    db.session.add(window)
    db.session.commit()
    return window


def get_freeze_window(actor: User, window_id: int) -> FreezeWindow:
    check_staff(actor)
    window = db.session.get(FreezeWindow, window_id)
    if window is None:
        raise NotFound(_("No such freeze window."))
    return window


def update_freeze_window(actor: User, window_id: int, data: dict) -> FreezeWindow:
    _check_admin(actor, _("freeze windows"))
    window = get_freeze_window(actor, window_id)
    _check_version(window, data.get("version"))
    _check_span(data.get("starts_at", window.starts_at), data.get("ends_at", window.ends_at))
    for key in WINDOW_FIELDS:
        if key in data:
            setattr(window, key, data[key])
    db.session.commit()
    return window


def delete_freeze_window(actor: User, window_id: int) -> None:
    _check_admin(actor, _("freeze windows"))
    db.session.delete(get_freeze_window(actor, window_id))
    db.session.commit()
