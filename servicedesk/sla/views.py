"""SLA administration pages: calendars, policies and groups' OLAs.

Admins list, create and edit; other IT staff see the same pages read-only; requesters
get 403. Thin like the API: a handler reads the form's notation (``sla.forms``),
validates the result with the API's own marshmallow schema, calls the same service
function as the API (``sla.admin``, ``sla.ola``), then redirects (POST/redirect/GET)
with a flash, or shows the form again with each reason next to its field and a 4xx
status. An edit carries the version it was made on: if someone saved in between, the
page says so (409) and shows what is stored now. Nothing changes on GET.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from babel.dates import get_day_names
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext
from flask_login import current_user
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError

from servicedesk.errors import ServiceError
from servicedesk.extensions import db, login_manager
from servicedesk.identity.models import Group
from servicedesk.sla import admin, forms, ola
from servicedesk.sla.schemas import (
    CalendarSchema,
    CalendarUpdateSchema,
    OlaSchema,
    OlaUpdateSchema,
    PolicySchema,
    PolicyUpdateSchema,
)
from servicedesk.tickets.admin import list_categories
from servicedesk.tickets.workflow import WORKFLOWS

bp = Blueprint("sla_pages", __name__, url_prefix="/console/sla")


@bp.before_request
def _staff_only():
    g.no_store = True
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_staff:
        abort(403)
    return None


def me():
    return current_user._get_current_object()


def _is_admin() -> bool:
    return current_user.role == "admin"


@bp.app_template_filter("sla_field_label")
def _field_label(key):
    return forms.label(str(key), _day_names())


def _day_names() -> dict[int, str]:
    return get_day_names("wide", locale=get_locale() or "en")


def _steps_writable() -> bool:
    """Whether policies take steps from their writers (the schema decides, as for the API)."""
    field = PolicySchema().fields.get("steps")
    return field is not None and not field.dump_only


@dataclass(frozen=True)
class Kind:
    """One kind of SLA record the pages manage, and the functions that manage it."""

    key: str
    form_template: str
    list_template: str
    create_schema: type[Schema]
    update_schema: type[Schema]
    listing: Callable
    get: Callable
    create: Callable
    update: Callable
    payload: Callable
    values: Callable
    defaults: Callable
    choices: Callable
    created: str  # flash messages, marked with N_ and translated when shown
    saved: str


def _pause_choices() -> list[str]:
    return sorted(admin.pause_status_choices([]))


def _calendar_choices() -> dict:
    return {"day_names": _day_names()}


def _policy_choices() -> dict:
    return {"calendars": admin.list_calendars(me()), "kinds": sorted(WORKFLOWS),
            "pause_choices": _pause_choices(), "categories": list_categories(),
            "steps_writable": _steps_writable()}


def _ola_choices() -> dict:
    groups = db.session.scalars(db.select(Group).order_by(Group.support_line, Group.name))
    return {"calendars": admin.list_calendars(me()), "groups": list(groups),
            "pause_choices": _pause_choices()}


KINDS = {
    "calendars": Kind(
        "calendars", "sla/calendar_form.html", "sla/calendars.html",
        CalendarSchema, CalendarUpdateSchema,
        admin.list_calendars, admin.get_calendar, admin.create_calendar,
        admin.update_calendar, forms.calendar_payload, forms.calendar_values,
        lambda: {"timezone": "UTC", **forms.week_lines({})}, _calendar_choices,
        created=forms.N_("The calendar %(name)s has been created."),
        saved=forms.N_("The calendar %(name)s has been saved.")),
    "policies": Kind(
        "policies", "sla/policy_form.html", "sla/policies.html",
        PolicySchema, PolicyUpdateSchema,
        admin.list_policies, admin.get_policy, admin.create_policy, admin.update_policy,
        lambda form, update: forms.policy_payload(form, update=update,
                                                  steps=_steps_writable()),
        forms.policy_values,
        lambda: {"active": True, "warning_percent": "75", "steps": "[]",
                 "pause_statuses": ["pending:awaiting_requester"]},
        _policy_choices,
        created=forms.N_("The policy %(name)s has been created."),
        saved=forms.N_("The policy %(name)s has been saved.")),
    "olas": Kind(
        "olas", "sla/ola_form.html", "sla/olas.html", OlaSchema, OlaUpdateSchema,
        ola.list_olas, ola.get_ola, ola.create_ola, ola.update_ola,
        forms.ola_payload, forms.ola_values,
        lambda: {"active": True, "warning_percent": "75",
                 "pause_statuses": ["pending:awaiting_requester"]},
        _ola_choices,
        created=forms.N_("The OLA of %(name)s has been created."),
        saved=forms.N_("The OLA of %(name)s has been saved.")),
}


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        abort(404)
    return KINDS[kind]


def _problem(exc: Exception) -> dict:
    """Why a submitted form was refused, for the page; the unit of work is undone."""
    db.session.rollback()
    if isinstance(exc, forms.FormError):
        return {"status": 422, "fields": exc.fields,
                "message": gettext("Some fields could not be read.")}
    if isinstance(exc, SchemaError):
        return {"status": 422, "fields": forms.flatten(exc.messages),
                "message": gettext("Some fields are missing or invalid.")}
    if exc.status == 404:
        raise exc
    return {"status": exc.status, "message": exc.message, "fields": dict(exc.fields or {})}


def _form_page(kind: Kind, row=None, problem=None, values=None):
    if values is None:
        values = kind.values(row) if row is not None else kind.defaults()
    page = render_template(
        kind.form_template, kind=kind.key, row=row, values=values, problem=problem,
        can_edit=_is_admin(), **kind.choices())
    return page, (problem["status"] if problem else 200)


# --- pages -----------------------------------------------------------------------------


@bp.route("/")
def index():
    return redirect(url_for(".records", kind="calendars"))


@bp.route("/<string:kind>")
def records(kind):
    """The list of calendars, policies or OLAs."""
    spec = _kind(kind)
    return render_template(spec.list_template, kind=kind, rows=spec.listing(me()),
                           can_edit=_is_admin())


@bp.route("/<string:kind>/new", methods=["GET", "POST"])
def new(kind):
    spec = _kind(kind)
    if not _is_admin():
        abort(403)
    if request.method == "GET":
        return _form_page(spec)
    try:
        data = spec.create_schema().load(spec.payload(request.form, update=False))
        row = spec.create(me(), data)
    except (forms.FormError, SchemaError, ServiceError) as exc:
        return _form_page(spec, problem=_problem(exc), values=forms.submitted(request.form))
    flash(gettext(spec.created, name=row.name), "success")
    return redirect(url_for(".record", kind=kind, record_id=row.id))


@bp.route("/<string:kind>/<int:record_id>", methods=["GET", "POST"])
def record(kind, record_id):
    spec = _kind(kind)
    if request.method == "GET":
        return _form_page(spec, spec.get(me(), record_id))
    if not _is_admin():
        abort(403)
    try:
        data = spec.update_schema().load(spec.payload(request.form, update=True))
        row = spec.update(me(), record_id, data)
    except (forms.FormError, SchemaError, ServiceError) as exc:
        problem = _problem(exc)
        row = spec.get(me(), record_id)
        # Changed by someone else meanwhile: show what is stored now, not the stale form.
        values = None if problem["status"] == 409 and "version" in problem["fields"] \
            else forms.submitted(request.form)
        return _form_page(spec, row, problem, values)
    flash(gettext(spec.saved, name=row.name), "success")
    return redirect(url_for(".record", kind=kind, record_id=row.id))
