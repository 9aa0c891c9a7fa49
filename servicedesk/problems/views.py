"""Problem pages (IT staff only): list, new, detail with linked incidents, known errors.

Thin, like the incident pages: each handler validates the form with the API's schema,
calls one service function, then redirects (POST/redirect/GET) with a flash, or
re-renders the page with the reasons and a 4xx status. For anyone but IT staff every
page here is a 404. The incident console page includes ``problems/_incident_panel.html``,
fed by the ``problem_panel`` template global below.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from marshmallow import RAISE
from marshmallow import ValidationError as SchemaError

from servicedesk import cmdb_links
from servicedesk.errors import ServiceError
from servicedesk.extensions import db
from servicedesk.incidents import forms as incident_forms
from servicedesk.incidents import service as incidents
from servicedesk.problems import forms, known_errors, service
from servicedesk.problems.schemas import (
    KnownErrorQuerySchema,
    ProblemCreateSchema,
    ProblemLinkSchema,
    ProblemQuerySchema,
    ProblemTransitionSchema,
    ProblemUpdateSchema,
    ProblemVersionSchema,
)
from servicedesk.problems.workflow import INCIDENT_RESOLUTION_CODES, PROBLEM_WORKFLOW
from servicedesk.tickets import service as core
from servicedesk.tickets.admin import list_categories
from servicedesk.tickets.models import LEVELS
from servicedesk.tickets.schemas import CommentCreateSchema
from servicedesk.web import helpers
from servicedesk.web.helpers import filter_refusal, form_refusal, me, staff_only, typed_values

bp = Blueprint("problems", __name__)

PAGE_SIZE = 50
LIST_FILTERS = ("status", "q", "known_error", "cursor")
TEXT_KEYS = ("title", "description", "impact", "urgency", "category_id", "root_cause",
             "workaround")
TRANSITION_KEYS = ("to", "version", "root_cause", "workaround", "resolution_notes",
                   "resolve_incidents", "incident_resolution_code")


@bp.before_request
def _no_store():
    g.no_store = True


@bp.app_template_filter("problem_status_label")
def _status_label(value):
    return helpers.label(forms.STATUS_LABELS, value)


@bp.app_template_filter("problem_field_label")
def _field_label(value):
    if value in forms.FIELD_LABELS:
        return helpers.label(forms.FIELD_LABELS, value)
    return helpers.label(incident_forms.FIELD_LABELS, value)


@bp.app_template_filter("problem_action_label")
def _action_label(value):
    if value in forms.ACTION_LABELS:
        return helpers.label(forms.ACTION_LABELS, value)
    return helpers.label(incident_forms.ACTION_LABELS, value)


@bp.app_template_filter("reason_label")
def _reason_label(value):
    return helpers.label(forms.REASON_LABELS, value)


@bp.app_template_global("problem_panel")
def problem_panel(incident) -> dict | None:
    """What the incident console page shows of problems: the problems it is linked to
    and known errors that may explain it. None for anyone but IT staff."""
    from flask_login import current_user

    if not current_user.is_authenticated or not current_user.is_staff:
        return None
    user = me()
    return {"linked": service.problems_of_incident(user, incident),
            "suggestions": known_errors.suggest_for_incident(user, incident)}


def _categories():
    categories = list_categories()
    top = [c for c in categories if c.parent_id is None]
    children = {c.id: [s for s in categories if s.parent_id == c.id] for c in top}
    return top, children


# --- list and search -----------------------------------------------------------------


@bp.route("/console/problems")
@staff_only
def console_list():
    raw = {k: v.strip() for k, v in request.args.items() if v.strip()}
    items, next_cursor, problem = [], None, None
    try:
        args = ProblemQuerySchema(only=LIST_FILTERS, unknown=RAISE).load(raw)
        cursor = args.pop("cursor", None)
        items, next_cursor = service.list_problems(me(), args, "-created_at", cursor, PAGE_SIZE)
    except (SchemaError, ServiceError) as exc:
        problem = filter_refusal(exc)
    next_url = None
    if next_cursor:
        next_url = url_for(".console_list", **{k: v for k, v in raw.items() if k != "cursor"},
                           cursor=next_cursor)
    page = render_template("problems/list.html", problems=items, next_url=next_url,
                           problem=problem, current=raw, statuses=PROBLEM_WORKFLOW.states)
    return page, (problem["status"] if problem else 200)


@bp.route("/console/known-errors")
@staff_only
def known_error_search():
    raw = {k: v.strip() for k, v in request.args.items() if v.strip()}
    results, problem = [], None
    try:
        args = KnownErrorQuerySchema(only=("q", "category_id", "ci_id"), unknown=RAISE).load(raw)
        results = known_errors.search_known_errors(me(), args.get("q", ""),
                                                   args.get("category_id"), args.get("ci_id"))
    except SchemaError as exc:
        problem = {"form": "search", "status": 400, "fields": helpers.flatten(exc.messages),
                   "message": gettext("The search has unknown or invalid values.")}
    top, _children = _categories()
    page = render_template("problems/known_errors.html", results=results, problem=problem,
                           current=raw, categories=top, searched=bool(raw))
    return page, (problem["status"] if problem else 200)


# --- new ---------------------------------------------------------------------------------


@bp.route("/console/problems/new", methods=["GET", "POST"])
@staff_only
def console_new():
    """Raise a problem; ``?from=INC...`` starts it from that incident."""
    problem, values = None, {}
    if request.method == "POST":
        try:
            data = helpers.load(ProblemCreateSchema(), request.form, TEXT_KEYS)
            numbers = forms.incident_numbers(request.form.get("incidents"))
            if numbers:
                data["incidents"] = ProblemCreateSchema(only=("incidents",)).load(
                    {"incidents": numbers})["incidents"]
            created = service.create_problem(me(), data)
        except (SchemaError, ServiceError) as exc:
            problem = form_refusal(exc, "new")
            values = request.form.to_dict()
        else:
            flash(gettext("Problem %(number)s raised.", number=created.number), "success")
            return redirect(url_for(".console_problem", number=created.number))
    else:
        source = request.args.get("from")
        if source:
            incident = incidents.get_incident(me(), source)  # 404 if not theirs to see
            values = {"title": incident.title, "incidents": incident.number,
                      "category_id": incident.category_id or "",
                      "description": gettext("Raised from %(number)s.", number=incident.number)}
    top, _children = _categories()
    page = render_template("problems/new.html", problem=problem, values=values,
                           levels=LEVELS, categories=top)
    return page, (problem["status"] if problem else 200)


# --- one problem ---------------------------------------------------------------------


def _detail(number: str, problem: dict | None = None):
    user = me()
    record = service.get_problem(user, number)
    links, hidden = service.linked_incidents(user, record)
    top, _children = _categories()
    page = render_template(
        "problems/detail.html", p=record, links=links, hidden=hidden,
        comments=core.list_comments(record, user), history=core.list_history(record, user),
        transitions=PROBLEM_WORKFLOW.allowed(record.status, user.role),
        is_final=PROBLEM_WORKFLOW.is_final(record.status),
        cis=cmdb_links.affected_cis(record), levels=LEVELS, categories=top,
        groups=helpers.groups(), staff=helpers.staff_by_group(),
        incident_codes=INCIDENT_RESOLUTION_CODES,
        problem=problem, values=typed_values(problem),
    )
    return page, (problem["status"] if problem else 200)


def _action(number: str, form: str, action, done: str, back: str | None = None):
    if not back:
        return helpers.form_action(form, action, done, lambda problem: _detail(number, problem),
                                   url_for(".console_problem", number=number))
    # Posted from an incident page: success or refusal, the reason is shown there.
    try:
        flash(action() or done, "success")
    except (SchemaError, ServiceError) as exc:
        db.session.rollback()
        flash(exc.message if isinstance(exc, ServiceError)
              else gettext("Some fields are missing or invalid."), "error")
    return redirect(url_for("incidents.console_incident", number=back))


@bp.route("/console/problems/<string:number>")
@staff_only
def console_problem(number):
    return _detail(number)


@bp.route("/console/problems/<string:number>/edit", methods=["POST"])
@staff_only
def console_edit(number):
    def action():
        data = helpers.load(ProblemUpdateSchema(), request.form,
                            TEXT_KEYS + ("group", "assignee", "version"),
                            nullable={"category_id", "root_cause", "workaround", "group",
                                      "assignee"})
        if "affected_cis" in request.form:
            data.update(ProblemUpdateSchema(only=("affected_cis",)).load(
                {"affected_cis": forms.ci_refs(request.form.get("affected_cis"))}))
        service.update_problem(me(), number, data)

    return _action(number, "edit", action, gettext("Changes saved."))


@bp.route("/console/problems/<string:number>/transition", methods=["POST"])
@staff_only
def console_transition(number):
    def action():
        data = helpers.load(ProblemTransitionSchema(), request.form, TRANSITION_KEYS)
        service.transition_problem(me(), number, data)

    target = helpers.label(forms.STATUS_LABELS, request.form.get("to"))
    return _action(number, "transition", action,
                   gettext("Status changed to %(status)s.", status=target))


@bp.route("/console/problems/<string:number>/link", methods=["POST"])
@staff_only
def console_link(number):
    back = request.form.get("back") or None
    if back is not None:
        back = back if back in forms.incident_numbers(back) else None

    def action():
        data = ProblemLinkSchema().load(
            {"incidents": forms.incident_numbers(request.form.get("incidents"))})
        service.link_incidents(me(), number, data["incidents"])

    return _action(number, "link", action, gettext("Incidents linked to %(number)s.",
                                                   number=number), back)


@bp.route("/console/problems/<string:number>/unlink", methods=["POST"])
@staff_only
def console_unlink(number):
    def action():
        incident = (request.form.get("incident") or "").strip()
        if not incident or len(incident) > 20:
            raise SchemaError({"incident": [gettext("Missing data for required field.")]})
        service.unlink_incident(me(), number, incident)

    return _action(number, "unlink", action, gettext("Incident unlinked."))


@bp.route("/console/problems/<string:number>/publish", methods=["POST"])
@staff_only
def console_publish(number):
    def action():
        data = helpers.load(ProblemVersionSchema(), request.form, ("version",))
        published = known_errors.publish_workaround(me(), number, data.get("version"))
        if not published:
            return gettext("Every linked open incident has this workaround already.")
        return gettext("Workaround published to %(numbers)s.", numbers=", ".join(published))

    return _action(number, "publish", action, "")


@bp.route("/console/problems/<string:number>/comment", methods=["POST"])
@staff_only
def console_comment(number):
    def action():
        data = helpers.load(CommentCreateSchema(), request.form, ("body", "public"))
        service.comment_problem(me(), number, data["body"], data["public"])

    return _action(number, "comment", action, gettext("Comment added."))

