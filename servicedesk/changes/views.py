"""Change pages (IT staff only; for requesters they do not exist: 404).

Thin, like the API: each handler turns the form into what a JSON client would send,
validates it with the API's own schema, calls one service function, then redirects
with a flash, or re-renders the page with the reasons and a 4xx status.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from marshmallow import ValidationError as SchemaError

from servicedesk import cmdb_links
from servicedesk.changes import admin, approval, calendar, risk, service
from servicedesk.changes.conflicts import find_conflicts
from servicedesk.changes.models import CHANGE_TYPES, REVIEW_OUTCOMES
from servicedesk.changes.schemas import (
    ChangeCreateSchema,
    ChangeFreezeWindowSchema,
    ChangeLinkSchema,
    ChangeTemplateSchema,
    ChangeTransitionSchema,
    ChangeUpdateSchema,
)
from servicedesk.changes.workflow import CHANGE_WORKFLOW
from servicedesk.errors import ServiceError, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import STAFF_ROLES, Group, User
from servicedesk.tickets import service as core
from servicedesk.tickets.schemas import CommentCreateSchema
from servicedesk.web import helpers
from servicedesk.web.helpers import form_refusal as _problem
from servicedesk.web.helpers import me, payload, staff_only, typed_values

bp = Blueprint("changes", __name__)

TEXT_KEYS = ("title", "description", "group", "implementation_plan", "backout_plan",
             "test_plan")
WHEN_KEYS = ("planned_start", "planned_end")


@bp.before_request
def _no_store():
    g.no_store = True


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(me().timezone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


@bp.app_template_filter("local_input")
def local_input(value) -> str:
    """An aware datetime as a datetime-local input's value, in the viewer's zone."""
    return value.astimezone(_zone()).strftime("%Y-%m-%dT%H:%M") if value else ""


def _form_payload(schema, keys, nullable=frozenset()) -> dict:
    """The form as JSON: datetime-local values in the viewer's zone, risk_<key> radios
    as ``risk_answers``, CIs as a list."""
    data = payload(schema, request.form, keys, nullable)
    for key in WHEN_KEYS:
        value = request.form.get(key, "").strip()
        if value:
            try:
                data[key] = datetime.fromisoformat(value).replace(
                    tzinfo=_zone()).isoformat() if "+" not in value else value
            except ValueError:
                data[key] = value  # the schema names it
    answers = {k[5:]: v for k, v in request.form.items() if k.startswith("risk_") and v}
    if answers:
        data["risk_answers"] = answers
    if "affected_cis" in request.form:
        refs = [r.strip() for r in request.form["affected_cis"].split(",") if r.strip()]
        data["affected_cis"] = [int(r) if r.isdigit() else r for r in refs]
    return data


def _render(template: str, problem: dict | None, **context):
    page = render_template(template, problem=problem, values=typed_values(problem), **context)
    return page, (problem["status"] if problem else 200)


def _form_context() -> dict:
    return {"types": CHANGE_TYPES, "templates": admin.list_templates(me(), active_only=True),
            "groups": list(db.session.scalars(db.select(Group).order_by(Group.name))),
            "staff": list(db.session.scalars(db.select(User).where(
                User.role.in_(sorted(STAFF_ROLES)), User.active.is_(True))
                .order_by(User.display_name, User.username))),
            "model": risk.risk_model()}


# --- list, new, calendar -------------------------------------------------------------


@bp.route("/changes")
@staff_only
def index():
    # Filter values come from fixed lists only; anything else is ignored.
    status = [s for s in request.args.getlist("status") if s in CHANGE_WORKFLOW.states]
    kinds = [t for t in request.args.getlist("change_type") if t in CHANGE_TYPES]
    filters = {"status": status, "change_type": kinds}
    if request.args.get("caused_incidents") == "true":
        filters["caused_incidents"] = True  # the report: changes that caused incidents
    items, _next = service.list_changes(me(), filters, None, 200)
    return render_template("changes/list.html", changes=items, states=CHANGE_WORKFLOW.states,
                           status=status, types=CHANGE_TYPES, kinds=kinds,
                           caused="caused_incidents" in filters)


@bp.route("/changes/new", methods=["GET", "POST"])
@staff_only
def new():
    problem = None
    if request.method == "POST":
        keys = TEXT_KEYS + ("change_type", "template_id")
        try:
            data = ChangeCreateSchema().load(_form_payload(ChangeCreateSchema(), keys))
            change = service.create_change(me(), data)
        except (SchemaError, ServiceError) as exc:
            problem = _problem(exc, "new")
        else:
            flash(gettext("Change %(number)s raised as a draft.", number=change.number),
                  "success")
            return redirect(url_for(".page", number=change.number))
    return _render("changes/new.html", problem, **_form_context())


@bp.route("/changes/calendar")
@staff_only
def calendar_page():
    view = "week" if request.args.get("view") == "week" else "month"
    try:
        anchor = date.fromisoformat(request.args.get("date", ""))
        if not date(1, 2, 1) <= anchor <= date(9999, 11, 30):
            raise ValueError  # its period or the previous/next one leaves the years 1-9999
    except ValueError:
        anchor = datetime.now(_zone()).date()
    start, end, prev_anchor, next_anchor = calendar.period(view, anchor)
    entries = calendar.calendar(me(), start, end)
    return render_template("changes/calendar.html", view=view, start=start, end=end,
                           days=calendar.days(start, end, entries), prev_anchor=prev_anchor,
                           next_anchor=next_anchor, entries=entries)


# --- one change ----------------------------------------------------------------------


def _page(number: str, problem: dict | None = None):
    user = me()
    change = service.get_change(user, number)
    return _render(
        "changes/detail.html", problem, change=change,
        allowed=service.allowed_transitions(change, user),
        planning=change.status in service.PLANNING_STATES,
        is_final=CHANGE_WORKFLOW.is_final(change.status),
        conflicts=find_conflicts(change), links=service.linked(change),
        cis=cmdb_links.affected_cis(change),
        approvals=approval.approvals_of(user, change),
        comments=core.list_comments(change, user), history=core.list_history(change, user),
        outcomes=REVIEW_OUTCOMES, **_form_context())


@bp.route("/changes/<string:number>")
@staff_only
def page(number):
    return _page(number)


def _action(number: str, form: str, action, done: str):
    return helpers.form_action(form, action, done, lambda problem: _page(number, problem),
                               url_for(".page", number=number))


@bp.route("/changes/<string:number>/edit", methods=["POST"])
@staff_only
def edit(number):
    def action():
        keys = TEXT_KEYS + ("assignee", "version")
        data = ChangeUpdateSchema().load(_form_payload(ChangeUpdateSchema(), keys,
                                                       nullable={"assignee"}))
        service.update_change(me(), number, data)

    return _action(number, "edit", action, gettext("Change saved."))


@bp.route("/changes/<string:number>/transition", methods=["POST"])
@staff_only
def transition(number):
    def action():
        keys = ("to", "version", "review_outcome", "review_notes", "comment")
        data = ChangeTransitionSchema().load(payload(ChangeTransitionSchema(), request.form,
                                                     keys))
        service.transition_change(me(), number, data)

    return _action(number, "transition", action, gettext("Status changed."))


@bp.route("/changes/<string:number>/comment", methods=["POST"])
@staff_only
def comment(number):
    def action():
        data = CommentCreateSchema().load(payload(CommentCreateSchema(), request.form,
                                                  ("body",)))
        service.comment_change(me(), number, data["body"], True)

    return _action(number, "comment", action, gettext("Comment added."))


@bp.route("/changes/<string:number>/link", methods=["POST"])
@staff_only
def link(number):
    def action():
        data = ChangeLinkSchema().load(payload(ChangeLinkSchema(), request.form,
                                               ("kind", "number")))
        service.link(me(), number, data["kind"], data["number"])

    return _action(number, "link", action, gettext("Linked."))


# --- administration ------------------------------------------------------------------


def _admin_page(problem: dict | None = None):
    if me().role != "admin":
        abort(404)
    model = risk.risk_model()
    model_json = json.dumps({k: model[k] for k in ("questions", "thresholds", "routes")},
                            indent=2, ensure_ascii=False)
    return _render("changes/admin.html", problem, templates=admin.list_templates(me()),
                   windows=admin.list_freeze_windows(me()), model=model,
                   model_json=model_json)


@bp.route("/changes/admin")
@staff_only
def admin_page():
    return _admin_page()


def _admin_action(form: str, action, done: str):
    if me().role != "admin":
        abort(404)
    try:
        action()
    except (SchemaError, ServiceError) as exc:
        return _admin_page(_problem(exc, form))
    flash(done, "success")
    return redirect(url_for(".admin_page"))


@bp.route("/changes/admin/templates", methods=["POST"])
@staff_only
def add_template():
    def action():
        keys = ("name", "description", "implementation_plan", "backout_plan", "test_plan")
        admin.create_template(me(), ChangeTemplateSchema().load(
            payload(ChangeTemplateSchema(), request.form, keys)))

    return _admin_action("template", action, gettext("Template added."))


@bp.route("/changes/admin/freeze-windows", methods=["POST"])
@staff_only
def add_freeze_window():
    def action():
        data = payload(ChangeFreezeWindowSchema(), request.form, ("name", "reason"))
        for key in ("starts_at", "ends_at"):
            value = request.form.get(key, "").strip()
            try:
                data[key] = datetime.fromisoformat(value).replace(tzinfo=_zone()).isoformat()
            except ValueError:
                data[key] = value
        admin.create_freeze_window(me(), ChangeFreezeWindowSchema().load(data))

    return _admin_action("freeze", action, gettext("Freeze window added."))


@bp.route("/changes/admin/freeze-windows/<int(max=2147483647):window_id>/delete",
          methods=["POST"])
@staff_only
def delete_freeze_window(window_id):
    return _admin_action("freeze", lambda: admin.delete_freeze_window(me(), window_id),
                         gettext("Freeze window removed."))


@bp.route("/changes/admin/templates/<int(max=2147483647):template_id>/active",
          methods=["POST"])
@staff_only
def toggle_template(template_id):
    def action():
        template = admin.get_template(me(), template_id)
        version = request.form.get("version", "")
        admin.update_template(me(), template_id, {
            "active": not template.active,
            "version": int(version) if version.isdigit() else None})

    return _admin_action("template", action, gettext("Template saved."))


@bp.route("/changes/admin/risk-model", methods=["POST"])
@staff_only
def save_risk_model():
    def action():
        try:
            model = json.loads(request.form.get("model", ""))
        except ValueError:
            raise ValidationError(gettext("The risk model must be JSON."),
                                  fields={"model": [gettext("Not valid JSON.")]}) from None
        if not isinstance(model, dict):
            raise ValidationError(gettext("The risk model must be a JSON object."),
                                  fields={"model": [gettext("Not an object.")]})
        risk.save_risk_model(me(), {k: model.get(k) for k in ("questions", "thresholds",
                                                              "routes")})

    return _admin_action("risk", action, gettext("Risk model saved."))
