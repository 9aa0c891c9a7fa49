"""Catalogue pages: employees browse services and their offerings; admins manage them.

The admin page edits the form definition as JSON (validated by the same service
functions as the API: a bad definition is shown with the place named).
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_required
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select

from servicedesk.catalogue import service
from servicedesk.catalogue.models import APPROVAL_RULES, SERVICE_KINDS
from servicedesk.catalogue.schemas import (
    OfferingCreateSchema,
    OfferingUpdateSchema,
    ServiceCreateSchema,
    ServiceUpdateSchema,
)
from servicedesk.errors import ServiceError
from servicedesk.extensions import db
from servicedesk.sla.models import SlaPolicy
from servicedesk.web import helpers
from servicedesk.web.helpers import me

bp = Blueprint("catalogue", __name__)


@bp.route("/catalogue")
@login_required
def browse():
    """Every active service with its active offerings."""
    services = service.list_services(me())
    offerings = service.list_offerings(me())
    by_service = {s.id: [o for o in offerings if o.service_id == s.id] for s in services}
    if not current_user.is_staff:  # employees: what they use, and what they can ask for
        services = [s for s in services if s.kind == "business" or by_service[s.id]]
    return render_template("catalogue/browse.html", services=services, offerings=by_service)


@bp.route("/catalogue/services/<int:service_id>")
@login_required
def service_page(service_id):
    item = service.get_service(me(), service_id)
    return render_template("catalogue/service.html", service=item,
                           offerings=service.list_offerings(me(), item.id))


# --- admin ---------------------------------------------------------------------------


def _admin_only():
    if not current_user.is_authenticated or current_user.role != "admin":
        abort(404)


def _admin_page(problem=None):
    page = render_template(
        "catalogue/admin.html", services=service.list_services(me(), include_inactive=True),
        offerings=service.list_offerings(me(), include_inactive=True), problem=problem,
        values=request.form.to_dict() if problem else {}, kinds=SERVICE_KINDS,
        rules=APPROVAL_RULES, groups=helpers.groups(), json=json,
        policies=db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.name)).all())
    return page, (problem["status"] if problem else 200)


@bp.route("/catalogue/admin")
@login_required
def admin():
    _admin_only()
    return _admin_page()


def _form_payload(keys, ints=(), bools=(), nullable=()):
    data = {}
    for key in keys:
        if key not in request.form:
            continue
        value = request.form.get(key, "").strip()
        if key in bools:  # a hidden "false" before the checkbox: the last value counts
            data[key] = request.form.getlist(key)[-1] in ("true", "on", "1")
        elif value == "":
            if key in nullable:
                data[key] = None
        elif key in ints:
            data[key] = int(value) if value.isdigit() and len(value) < 11 else value
        else:
            data[key] = value
    return data


def _form_definition(data: dict) -> dict:
    if "form" in data and data["form"] is not None:
        try:
            data["form"] = json.loads(data["form"])
        except ValueError:
            raise SchemaError({"form": [gettext("Not valid JSON.")]}) from None
    return data


def _save(which: str, action) -> tuple:
    try:
        action()
    except (SchemaError, ServiceError) as exc:
        db.session.rollback()
        if isinstance(exc, SchemaError):
            problem = {"form": which, "status": 422, "fields": helpers.flatten(exc.messages),
                       "message": gettext("Some fields are missing or invalid.")}
        else:
            problem = {"form": which, "status": exc.status, "message": exc.message,
                       "fields": dict(exc.fields or {})}
        return _admin_page(problem)
    flash(gettext("Saved."), "success")
    return redirect(url_for(".admin"))


_SERVICE_KEYS = ("name", "kind", "description", "owner_group", "sla_policy_id", "active",
                 "version")
_OFFERING_KEYS = ("service_id", "name", "description", "form", "approval_rule",
                  "approval_group", "fulfilment_group", "active", "version")


@bp.route("/catalogue/admin/services", methods=["POST"])
@bp.route("/catalogue/admin/services/<int:service_id>", methods=["POST"])
@login_required
def save_service(service_id=None):
    _admin_only()

    def action():
        data = _form_payload(_SERVICE_KEYS, ints=("version", "sla_policy_id"),
                             bools=("active",), nullable=("owner_group", "sla_policy_id"))
        if "cis" in request.form:  # ids or external keys, by commas or lines
            refs = [p.strip() for p in re.split(r"[,\n]", request.form["cis"]) if p.strip()]
            data["cis"] = [int(p) if p.isascii() and p.isdigit() and len(p) < 11 else p
                           for p in refs]
        if service_id is None:
            service.create_service(me(), ServiceCreateSchema().load(data))
        else:
            service.update_service(me(), service_id, ServiceUpdateSchema().load(data))

    return _save(f"service-{service_id or 'new'}", action)


@bp.route("/catalogue/admin/offerings", methods=["POST"])
@bp.route("/catalogue/admin/offerings/<int:offering_id>", methods=["POST"])
@login_required
def save_offering(offering_id=None):
    _admin_only()

    def action():
        data = _form_definition(_form_payload(
            _OFFERING_KEYS, ints=("version", "service_id"), bools=("active",),
            nullable=("approval_group", "fulfilment_group")))
        if offering_id is None:
            service.create_offering(me(), OfferingCreateSchema().load(data))
        else:
            service.update_offering(me(), offering_id, OfferingUpdateSchema().load(data))

    return _save(f"offering-{offering_id or 'new'}", action)
