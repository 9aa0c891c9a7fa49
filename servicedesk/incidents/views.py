"""Incident pages: the employee portal and the agent console.

Thin, like the API: each handler parses the form, validates it with the API's own
marshmallow schema, calls one service function, then redirects (POST/redirect/GET)
with a flash, or re-renders the page with the reasons and a 4xx status. Nothing
changes on GET. Who may see what is decided by the service layer alone.
"""

from __future__ import annotations

import re

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import login_required
from marshmallow import RAISE
from marshmallow import ValidationError as SchemaError

from servicedesk import cmdb_links
from servicedesk.errors import NotFound, ServiceError
from servicedesk.extensions import db
from servicedesk.incidents import forms, service
from servicedesk.incidents.schemas import (
    EscalateSchema,
    IncidentCreateSchema,
    IncidentQuerySchema,
    IncidentUpdateSchema,
    TransitionSchema,
)
from servicedesk.incidents.workflow import INCIDENT_WORKFLOW, PENDING_REASONS, RESOLUTION_CODES
from servicedesk.kb import analytics as kb_analytics
from servicedesk.sla.service import clock_breached, sla_state
from servicedesk.tickets import service as core
from servicedesk.tickets.admin import list_categories
from servicedesk.tickets.models import LEVELS
from servicedesk.tickets.schemas import CommentCreateSchema
from servicedesk.web import helpers
from servicedesk.web.helpers import filter_refusal
from servicedesk.web.helpers import form_refusal as _problem
from servicedesk.web.helpers import me, staff_only
from servicedesk.web.helpers import typed_values as _values

bp = Blueprint("incidents", __name__)

PAGE_SIZE = 50
QUEUE_FILTERS = ("status", "priority", "group", "assignee", "sort", "cursor")
QUEUE_SORTS = ("priority", "due")  # most urgent first; breaches next
CREATE_KEYS = ("title", "description", "impact", "urgency", "category_id", "subcategory_id")
EDIT_KEYS = ("impact", "urgency", "category_id", "subcategory_id", "version")
TRANSITION_KEYS = ("to", "version", "pending_reason", "resolution_code", "resolution_notes")


# --- plumbing ------------------------------------------------------------------------


@bp.before_request
def _no_store():
    # Ticket pages carry personal data: never kept by a shared cache or the back button.
    g.no_store = True


@bp.app_template_filter("duration")
def _duration(seconds):
    return forms.humanize_seconds(seconds)


@bp.app_template_filter("status_label")
def _status_label(value):
    return helpers.label(forms.STATUS_LABELS, value)


@bp.app_template_filter("level_label")
def _level_label(value):
    return helpers.label(forms.LEVEL_LABELS, value)


@bp.app_template_filter("pending_label")
def _pending_label(value):
    return helpers.label(forms.PENDING_LABELS, value)


@bp.app_template_filter("resolution_label")
def _resolution_label(value):
    return helpers.label(forms.RESOLUTION_LABELS, value)


@bp.app_template_filter("action_label")
def _action_label(value):
    return helpers.label(forms.ACTION_LABELS, value)


@bp.app_template_filter("field_label")
def _field_label(value):
    return helpers.label(forms.FIELD_LABELS, value)


@bp.app_template_global("owner_of")
def owner_of(incident) -> str:
    """Who has it: the assignee's name, else the group's, else nobody yet."""
    if incident.assignee is not None:
        return incident.assignee.name
    if incident.group is not None:
        return incident.group.name
    return gettext("Not yet assigned")


@bp.app_template_global("clock_breached")
def _clock_breached(clock) -> bool:
    return clock_breached(clock)


@bp.app_template_global("sla_class")
def sla_class(incident) -> str:
    """The queue row's SLA colour: sla-ok, sla-warning (past its warning instant) or
    sla-breached; nothing for a ticket without SLA clocks."""
    state = sla_state(incident)
    return f"sla-{state}" if state else ""


def _category_choices():
    categories = list_categories()
    top = [c for c in categories if c.parent_id is None]
    children = {c.id: [s for s in categories if s.parent_id == c.id] for c in top}
    return top, children


# --- employee portal -----------------------------------------------------------------


@bp.route("/portal")
@login_required
def portal():
    """My incidents, newest first."""
    user = me()
    problem = None
    try:
        items, next_cursor = service.list_incidents(
            user, {"requester": user.username}, "-created_at",
            request.args.get("cursor") or None, PAGE_SIZE)
    except ServiceError as exc:
        db.session.rollback()
        items, next_cursor = [], None
        problem = {"form": "list", "status": 400, "message": exc.message, "fields": exc.fields}
    page = render_template("incidents/portal_list.html", incidents=items,
                           next_cursor=next_cursor, problem=problem)
    return page, (problem["status"] if problem else 200)


@bp.route("/portal/new", methods=["GET", "POST"])
@login_required
def new_incident():
    """Raise an incident."""
    problem = None
    if request.method == "POST":
        try:
            data = helpers.load(IncidentCreateSchema(), request.form, CREATE_KEYS)
            incident = service.create_incident(me(), data, channel="web")
        except (SchemaError, ServiceError) as exc:
            problem = _problem(exc, "new")
        else:
            # The knowledge base's searches before it: "a ticket followed".
            kb_analytics.note_ticket_followed(me(), incident, request.form.get("kb_session"))
            flash(gettext("Thank you. Your incident %(number)s has been raised.",
                          number=incident.number), "success")
            return redirect(url_for(".portal_incident", number=incident.number))
    top, children = _category_choices()
    # One search session per visit of the form (its suggestions' log row, see kb).
    kb_session = (kb_analytics.valid_session(request.form.get("kb_session"))
                  or kb_analytics.new_session())
    page = render_template("incidents/portal_new.html", problem=problem,
                           values=_values(problem), levels=LEVELS,
                           categories=top, subcategories=children, kb_session=kb_session)
    return page, (problem["status"] if problem else 200)


def _portal_page(number: str, problem: dict | None = None):
    user = me()
    incident = service.get_incident(user, number)
    # The requester's view: public replies only, even when staff look at it here.
    comments = [c for c in core.list_comments(incident, user) if c.public]
    allowed = INCIDENT_WORKFLOW.allowed(incident.status, user.role)
    page = render_template(
        "incidents/portal_detail.html", incident=incident, comments=comments,
        allowed=allowed, is_final=INCIDENT_WORKFLOW.is_final(incident.status),
        problem=problem, values=_values(problem),
    )
    return page, (problem["status"] if problem else 200)


@bp.route("/portal/incidents/<string:number>")
@login_required
def portal_incident(number):
    return _portal_page(number)


@bp.route("/portal/incidents/<string:number>/reply", methods=["POST"])
@login_required
def portal_reply(number):
    try:
        data = helpers.load(CommentCreateSchema(), request.form, ("body",))
        service.comment_incident(me(), number, data["body"], True)
    except (SchemaError, ServiceError) as exc:
        return _portal_page(number, _problem(exc, "reply"))
    flash(gettext("Your reply has been added."), "success")
    return redirect(url_for(".portal_incident", number=number))


@bp.route("/portal/incidents/<string:number>/status", methods=["POST"])
@login_required
def portal_transition(number):
    """Confirm the fix (closed), reopen (in_progress) or withdraw (cancelled)."""
    try:
        data = helpers.load(TransitionSchema(), request.form, ("to", "version"))
        incident = service.transition_incident(me(), number, data)
    except (SchemaError, ServiceError) as exc:
        return _portal_page(number, _problem(exc, "status"))
    messages = {
        "closed": gettext("Thank you for confirming; %(number)s is closed.", number=number),
        "in_progress": gettext("%(number)s has been reopened.", number=number),
        "cancelled": gettext("%(number)s has been withdrawn.", number=number),
    }
    flash(messages.get(incident.status, gettext("Saved.")), "success")
    return redirect(url_for(".portal_incident", number=number))


# --- agent console -------------------------------------------------------------------


@bp.route("/console")
@staff_only
def console():
    """The queue: open incidents the agent may see, most urgent first, 50 a page."""
    raw = {key: ",".join(v.strip() for v in values if v.strip())
           for key, values in request.args.lists()}
    raw = {key: value for key, value in raw.items() if value}
    items, next_cursor, problem = [], None, None
    try:
        args = IncidentQuerySchema(only=QUEUE_FILTERS, unknown=RAISE).load(raw)
        cursor = args.pop("cursor", None)
        sort = args.pop("sort") if "sort" in raw else "priority"
        if sort not in QUEUE_SORTS:
            raise SchemaError({"sort": [gettext("Not a sort order of the queue.")]})
        # The queue shows open work unless a status is asked for explicitly.
        filters = args if args.get("status") else {"open": True, **args}
        items, next_cursor = service.list_incidents(me(), filters, sort, cursor, PAGE_SIZE)
    except (SchemaError, ServiceError) as exc:
        problem = filter_refusal(exc)
    next_url = None
    if next_cursor:
        kept = {k: v for k, v in raw.items() if k != "cursor"}
        next_url = url_for(".console", **kept, cursor=next_cursor)
    page = render_template(
        "incidents/console_queue.html", incidents=items, next_url=next_url, problem=problem,
        current=raw, statuses=INCIDENT_WORKFLOW.states, groups=helpers.groups(),
        staff=helpers.staff_by_group(),
    )
    return page, (problem["status"] if problem else 200)


def _console_page(number: str, problem: dict | None = None):
    user = me()
    incident = service.get_incident(user, number)
    groups = helpers.groups()
    next_line = (incident.support_line or 1) + 1
    top, children = _category_choices()
    page = render_template(
        "incidents/console_detail.html",
        incident=incident,
        comments=core.list_comments(incident, user),
        history=core.list_history(incident, user),
        # "assigned" needs an assignee: the assign form is the way there.
        transitions=[t for t in INCIDENT_WORKFLOW.allowed(incident.status, user.role)
                     if t != "assigned"],
        is_open=INCIDENT_WORKFLOW.is_open(incident.status),
        is_final=INCIDENT_WORKFLOW.is_final(incident.status),
        groups=groups,
        staff=helpers.staff_by_group(),
        next_line=next_line if next_line <= 3 else None,
        escalation_groups=[grp for grp in groups if grp.support_line == next_line],
        categories=top, subcategories=children,
        levels=LEVELS, pending_reasons=PENDING_REASONS, resolution_codes=RESOLUTION_CODES,
        problem=problem, values=_values(problem),
        cmdb=cmdb_links.incident_summary(incident),
    )
    return page, (problem["status"] if problem else 200)


def _console_action(number: str, form: str, action, done: str):
    """Run one service call for a console form: PRG on success, the page with reasons else."""
    def after():
        try:
            service.get_incident(me(), number)
        except NotFound:
            # Handed to a queue the agent does not see (escalated, moved to another
            # group): back to their own queue rather than on to a 404.
            return url_for(".console")
        return url_for(".console_incident", number=number)

    return helpers.form_action(form, action, done,
                               lambda problem: _console_page(number, problem), after)


@bp.route("/console/incidents/<string:number>")
@staff_only
def console_incident(number):
    return _console_page(number)


@bp.route("/console/incidents/<string:number>/comment", methods=["POST"])
@staff_only
def console_comment(number):
    def action():
        data = helpers.load(CommentCreateSchema(), request.form, ("body", "public"))
        service.comment_incident(me(), number, data["body"], data["public"])

    public = request.form.get("public", "true") != "false"
    done = gettext("Reply sent.") if public else gettext("Internal note added.")
    return _console_action(number, "comment", action, done)


@bp.route("/console/incidents/<string:number>/assign", methods=["POST"])
@staff_only
def console_assign(number):
    def action():
        data = helpers.load(IncidentUpdateSchema(), request.form,
                            ("group", "assignee", "version"), nullable={"assignee"})
        service.update_incident(me(), number, data)

    return _console_action(number, "assign", action, gettext("Assignment saved."))


@bp.route("/console/incidents/<string:number>/take", methods=["POST"])
@staff_only
def console_take(number):
    def action():
        form = {"assignee": me().username, "version": request.form.get("version", "")}
        data = helpers.load(IncidentUpdateSchema(), form, ("assignee", "version"))
        service.update_incident(me(), number, data)

    return _console_action(number, "assign", action,
                           gettext("%(number)s is yours now.", number=number))


@bp.route("/console/incidents/<string:number>/transition", methods=["POST"])
@staff_only
def console_transition(number):
    def action():
        data = helpers.load(TransitionSchema(), request.form, TRANSITION_KEYS)
        service.transition_incident(me(), number, data)

    target = helpers.label(forms.STATUS_LABELS, request.form.get("to"))
    return _console_action(number, "transition", action,
                           gettext("Status changed to %(status)s.", status=target))


@bp.route("/console/incidents/<string:number>/escalate", methods=["POST"])
@staff_only
def console_escalate(number):
    def action():
        data = helpers.load(EscalateSchema(), request.form, ("group", "note", "version"))
        service.escalate_incident(me(), number, data)

    return _console_action(number, "escalate", action,
                           gettext("%(number)s escalated to the next support line.",
                                   number=number))


@bp.route("/console/incidents/<string:number>/cis", methods=["POST"])
@staff_only
def console_cis(number):
    """The affected CIs: ids or external keys, separated by commas or lines."""
    def action():
        parts = (p.strip() for p in re.split(r"[,\n]", request.form.get("affected_cis", "")))
        refs = [int(p) if p.isascii() and p.isdigit() and len(p) < 11 else p
                for p in parts if p]
        data = IncidentUpdateSchema(only=("affected_cis", "version")).load(
            {"affected_cis": refs, **helpers.payload(IncidentUpdateSchema(), request.form,
                                                     ("version",))})
        service.update_incident(me(), number, data)

    return _console_action(number, "cis", action, gettext("Configuration items saved."))


@bp.route("/console/incidents/<string:number>/edit", methods=["POST"])
@staff_only
def console_edit(number):
    def action():
        data = helpers.load(IncidentUpdateSchema(), request.form, EDIT_KEYS,
                            nullable={"category_id", "subcategory_id"})
        service.update_incident(me(), number, data)

    return _console_action(number, "edit", action, gettext("Changes saved."))
