"""Directory admin pages: settings, connection test, sync buttons, sync reports.

Admins only; for everyone else the pages do not exist (404). Thin like the API: the
form is turned into the API's JSON body, validated with the API's own schema and
handed to the same service function; refused input is shown again with each reason
and a 4xx status. "Test connection" and "Apply preset" try the form's values without
saving them. Nothing changes on GET.
"""

from __future__ import annotations

import re
from functools import wraps

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from marshmallow import ValidationError as SchemaError

from servicedesk.errors import ServiceError
from servicedesk.extensions import db, login_manager
from servicedesk.identity.models import ROLES, Group
from servicedesk.ldap import service
from servicedesk.ldap.models import REPORT_ACTIONS, SECURITY_MODES
from servicedesk.ldap.schemas import ATTRIBUTE_KEYS, LdapConfigUpdateSchema
from servicedesk.web.helpers import flatten, me

bp = Blueprint("ldap_pages", __name__, url_prefix="/admin/ldap")

INTEGER_FIELDS = ("timeout_seconds", "page_size", "sync_interval_minutes",
                  "max_deactivate_percent", "version")
TEXT_FIELDS = ("flavour", "security", "ca_file", "bind_dn", "user_base_dn", "user_filter",
               "disabled_filter", "group_base_dn", "group_filter", "group_member_attribute",
               "id_attribute", "change_attribute", "default_role")
SPARE_MAPPING_ROWS = 3
_INTEGER = re.compile(r"^\d{1,9}$")


def admin_only(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        g.no_store = True
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.role != "admin":
            abort(404)
        return view(*args, **kwargs)

    return wrapper


@bp.app_template_filter("ldap_field_label")
def _field_label(key) -> str:
    labels = {
        "server_uris": gettext("Server URIs"), "security": gettext("Security"),
        "ca_file": gettext("CA file"), "tls_verify": gettext("Validate certificates"),
        "timeout_seconds": gettext("Timeout"), "bind_dn": gettext("Bind DN"),
        "bind_password": gettext("Bind password"), "user_base_dn": gettext("User base DN"),
        "user_filter": gettext("User filter"), "disabled_filter": gettext("Disabled filter"),
        "group_base_dn": gettext("Group base DN"), "group_filter": gettext("Group filter"),
        "group_member_attribute": gettext("Member attribute"),
        "id_attribute": gettext("Stable id attribute"),
        "change_attribute": gettext("Change attribute"),
        "attributes": gettext("Attribute mapping"), "group_mappings": gettext("Group mappings"),
        "default_role": gettext("Default role"), "page_size": gettext("Page size"),
        "sync_interval_minutes": gettext("Sync every (minutes)"),
        "max_deactivate_percent": gettext("Deactivation limit (%)"),
        "version": gettext("Version"), "flavour": gettext("Flavour"),
        "enabled": gettext("Enabled"),
    }
    return labels.get(str(key), str(key))


def _labels(mapping: dict):
    return lambda value: mapping().get(value, value or "—")


_LABELS = {
    "ldap_status_label": lambda: {
        "queued": gettext("queued"), "running": gettext("running"), "ok": gettext("done"),
        "aborted": gettext("aborted"), "failed": gettext("failed"),
        "skipped": gettext("skipped")},
    "ldap_trigger_label": lambda: {
        "cli": gettext("command line"), "web": gettext("admin page"), "api": gettext("API"),
        "schedule": gettext("schedule")},
    "ldap_mode_label": lambda: {"full": gettext("full"), "incremental": gettext("incremental")},
    "ldap_action_label": lambda: {
        "created": gettext("created"), "updated": gettext("updated"),
        "deactivated": gettext("deactivated"), "reactivated": gettext("reactivated"),
        "error": gettext("error")},
    "ldap_security_label": lambda: {
        "ldaps": gettext("LDAPS (ldaps://)"), "starttls": gettext("StartTLS (ldap://)"),
        "plain": gettext("No TLS (test directories only)")},
    "ldap_attribute_label": lambda: {
        "username": gettext("Username"), "email": gettext("E-mail"),
        "display_name": gettext("Display name"), "phone": gettext("Phone"),
        "department": gettext("Department"), "title": gettext("Title"),
        "manager": gettext("Manager (DN)")},
    "ldap_role_label": lambda: {
        "requester": gettext("Requester"), "agent": gettext("Agent"),
        "manager": gettext("Manager"), "admin": gettext("Admin")},
}
for _name, _mapping in _LABELS.items():
    bp.add_app_template_filter(_labels(_mapping), _name)


# --- form <-> API body ------------------------------------------------------------------------


def form_data(form) -> dict:
    """The API's PUT body this form submission stands for."""
    data: dict = {"enabled": form.get("enabled") == "on",
                  "tls_verify": form.get("tls_verify") == "on"}
    for key in TEXT_FIELDS:
        if key in form:
            data[key] = form.get(key, "")
    for key in INTEGER_FIELDS:
        value = form.get(key, "").strip()
        if value:
            data[key] = int(value) if _INTEGER.match(value) else value
    if form.get("bind_password"):
        data["bind_password"] = form["bind_password"]
    data["server_uris"] = [line.strip() for line in form.get("server_uris", "").splitlines()
                           if line.strip()]
    data["attributes"] = {key: form.get(f"attr_{key}", "").strip() for key in ATTRIBUTE_KEYS}
    mappings = []
    for index in range(0, 500 + SPARE_MAPPING_ROWS):
        if f"map_dn_{index}" not in form:
            break
        row = {"ldap_group": form.get(f"map_dn_{index}", "").strip(),
               "group": form.get(f"map_group_{index}", "").strip(),
               "role": form.get(f"map_role_{index}", "").strip()}
        if any(row.values()):
            mappings.append(row)
    data["group_mappings"] = mappings
    return data


def values_of(config) -> dict:
    """What the form shows for a configuration row (never its bind password)."""
    values = {key: getattr(config, key) for key in service.EDITABLE if key != "bind_password"}
    values["server_uris"] = "\n".join(config.server_uris or [])
    values["version"] = config.version
    values["bind_password_set"] = bool(config.bind_password)
    return values


def _values_from_form(form) -> dict:
    data = form_data(form)
    values = {**data, "server_uris": form.get("server_uris", "")}
    values.pop("bind_password", None)
    values["bind_password_set"] = bool(form.get("bind_password")) or bool(
        (service.load_config() or service.new_config()).bind_password)
    values.setdefault("version", form.get("version", ""))
    return values


def _problem(exc: Exception) -> dict:
    db.session.rollback()
    if isinstance(exc, SchemaError):
        return {"status": 422, "fields": flatten(exc.messages),
                "message": gettext("Some fields are missing or invalid.")}
    return {"status": exc.status, "message": exc.message, "fields": dict(exc.fields or {})}


def _page(values: dict, problem: dict | None = None, test: dict | None = None, status=None):
    groups = list(db.session.scalars(db.select(Group.name).order_by(Group.name)))
    mappings = list(values.get("group_mappings") or [])
    mappings += [{"ldap_group": "", "group": "", "role": ""}] * SPARE_MAPPING_ROWS
    reports = service.list_reports(me(), limit=5)
    page = render_template("ldap/config.html", values=values, problem=problem, test=test,
                           groups=groups, roles=ROLES, mappings=mappings,
                           attribute_keys=ATTRIBUTE_KEYS, security_modes=SECURITY_MODES,
                           change_attributes=service.CHANGE_ATTRIBUTES, reports=reports)
    return page, status or (problem["status"] if problem else 200)


# --- pages --------------------------------------------------------------------------------------


@bp.route("", methods=["GET", "POST"])
@admin_only
def settings():
    """The settings form; POST saves it."""
    if request.method == "GET":
        return _page(values_of(service.get_config(me())))
    try:
        data = LdapConfigUpdateSchema().load(form_data(request.form))
        service.update_config(me(), data)
    except (SchemaError, ServiceError) as exc:
        problem = _problem(exc)
        values = _values_from_form(request.form)
        if problem["status"] == 409:  # stale: show what is stored now
            values = values_of(service.get_config(me()))
        return _page(values, problem)
    flash(gettext("The directory settings were saved."), "success")
    return redirect(url_for(".settings"))


@bp.route("/preset", methods=["POST"])
@admin_only
def apply_preset():
    """Fill the form with a flavour's preset (not saved until the admin saves)."""
    flavour = request.form.get("flavour", "")
    try:
        found = service.preset(me(), flavour)
    except ServiceError as exc:
        return _page(_values_from_form(request.form), _problem(exc))
    values = _values_from_form(request.form)
    values.update(found["values"], flavour=flavour)
    flash(gettext("Preset applied to the form: review it, then save."), "info")
    return _page(values)


@bp.route("/test", methods=["POST"])
@admin_only
def test():
    """Test the connection with the form's values (nothing is saved)."""
    values = _values_from_form(request.form)
    try:
        data = LdapConfigUpdateSchema().load(form_data(request.form))
        data.pop("version", None)
        result = service.test_connection(me(), data)
    except (SchemaError, ServiceError) as exc:
        return _page(values, _problem(exc))
    return _page(values, test=result)


@bp.route("/sync", methods=["POST"])
@admin_only
def sync():
    """Run a sync or a dry run now; then its report."""
    dry_run = request.form.get("dry_run") == "1"
    try:
        report = service.start_sync(me(), "web", dry_run=dry_run,
                                    full=request.form.get("full") == "1")
    except ServiceError as exc:
        return _page(values_of(service.get_config(me())), _problem(exc))
    if report.status in ("queued", "running"):
        flash(gettext("The sync was queued; this page shows its report when it is done."),
              "info")
    return redirect(url_for(".report", report_id=report.id))


@bp.route("/reports")
@admin_only
def reports():
    before = request.args.get("before", "")
    before = int(before) if _INTEGER.match(before) else None
    rows = service.list_reports(me(), limit=50, before=before)
    older = rows[-1].id if len(rows) == 50 else None
    return render_template("ldap/reports.html", reports=rows, older=older)


@bp.route("/reports/<int:report_id>")
@admin_only
def report(report_id):
    row = service.get_report(me(), report_id if report_id < 2**31 else 0)
    action = request.args.get("action") or None
    if action not in (None, *REPORT_ACTIONS):
        abort(400)
    after = request.args.get("after", "0")
    after = int(after) if _INTEGER.match(after) else 0
    items, next_after = service.report_items(me(), row, action, after, 200)
    return render_template("ldap/report.html", report=row, items=items, action=action,
                           next_after=next_after, actions=REPORT_ACTIONS)
