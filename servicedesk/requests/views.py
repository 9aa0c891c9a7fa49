"""Service-request pages: the request form (rendered from the offering's definition),
"My requests", the request page (requester and staff), and the staff queue.

Thin, like the API: parse, call one service function, PRG with a flash, or re-render
with the reasons and a 4xx status. Nothing changes on GET.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import login_required
from marshmallow import RAISE
from marshmallow import ValidationError as SchemaError

from servicedesk import cmdb_links
from servicedesk.catalogue import service as catalogue
from servicedesk.catalogue.formdef import answers_from_form, labelled_answers
from servicedesk.errors import ServiceError
from servicedesk.extensions import db
from servicedesk.requests import approval, service
from servicedesk.requests.schemas import (
    RequestQuerySchema,
    RequestTransitionSchema,
    RequestUpdateSchema,
)
from servicedesk.requests.workflow import REQUEST_WORKFLOW
from servicedesk.tickets import service as core
from servicedesk.tickets.schemas import CommentCreateSchema
from servicedesk.web import helpers
from servicedesk.web.helpers import N_, filter_refusal, me, staff_only, typed_values
from servicedesk.web.helpers import form_refusal as _problem

bp = Blueprint("requests", __name__)

PAGE_SIZE = 50


STATUS_LABELS = {
    "submitted": N_("Submitted"),
    "awaiting_approval": N_("Awaiting approval"),
    "approved": N_("Approved"),
    "in_fulfilment": N_("In fulfilment"),
    "fulfilled": N_("Fulfilled"),
    "closed": N_("Closed"),
    "rejected": N_("Rejected"),
    "cancelled": N_("Cancelled"),
}
APPROVAL_LABELS = {
    "not_required": N_("Not needed"),
    "pending": N_("Waiting for a decision"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
}


@bp.before_request
def _no_store():
    g.no_store = True


@bp.app_template_filter("request_status")
def _request_status(value):
    return helpers.label(STATUS_LABELS, value)


@bp.app_template_filter("approval_label")
def _approval_label(value):
    return helpers.label(APPROVAL_LABELS, value)


# --- asking --------------------------------------------------------------------------


@bp.route("/catalogue/offerings/<int:offering_id>/request", methods=["GET", "POST"])
@login_required
def new_request(offering_id):
    """The offering's form; sending it raises the request."""
    offering = catalogue.get_offering(me(), offering_id)
    problem = None
    if request.method == "POST":
        try:
            data = {"offering_id": offering.id,
                    "answers": answers_from_form(offering.form or {}, request.form)}
            if request.form.get("description", "").strip():
                data["description"] = request.form["description"].strip()[:50_000]
            item = service.create_request(me(), data, channel="web")
        except ServiceError as exc:
            problem = _problem(exc, "new")
        else:
            flash(gettext("Thank you. Your request %(number)s has been sent.",
                          number=item.number), "success")
            return redirect(url_for(".request_page", number=item.number))
    typed = {}
    if problem:
        typed = {key[len("answers."):]: request.form.getlist(key)
                 for key in request.form if key.startswith("answers.")}
    page = render_template("requests/new.html", offering=offering, problem=problem,
                           typed=typed, description=request.form.get("description", ""))
    return page, (problem["status"] if problem else 200)


@bp.route("/my/requests")
@login_required
def my_requests():
    user = me()
    problem = None
    try:
        items, next_cursor = service.list_requests(
            user, {"requester": "me"}, "-created_at", request.args.get("cursor") or None,
            PAGE_SIZE)
    except ServiceError as exc:
        db.session.rollback()
        items, next_cursor = [], None
        problem = {"form": "list", "status": 400, "message": exc.message, "fields": exc.fields}
    page = render_template("requests/mine.html", items=items, next_cursor=next_cursor,
                           problem=problem)
    return page, (problem["status"] if problem else 200)


# --- the request page ----------------------------------------------------------------


def _page(number: str, problem: dict | None = None):
    user = me()
    item = service.get_request(user, number)
    comments = core.list_comments(item, user)
    allowed = []
    if user.is_staff or user.id == item.requester_id:
        allowed = REQUEST_WORKFLOW.allowed(item.status, user.role)
    page = render_template(
        "requests/detail.html", item=item, comments=comments,
        answers=labelled_answers(item.offering.form, item.answers or {}),
        history=core.list_history(item, user) if user.is_staff else [],
        allowed=allowed, is_final=REQUEST_WORKFLOW.is_final(item.status),
        approval_panel=approval.panel(item, user),
        staff=helpers.staff_by_group() if user.is_staff else [],
        groups=helpers.groups() if user.is_staff else [],
        problem=problem, values=typed_values(problem),
        cis=cmdb_links.affected_cis(item) if user.is_staff else [],
    )
    return page, (problem["status"] if problem else 200)


@bp.route("/requests/<string:number>")
@login_required
def request_page(number):
    return _page(number)


def _act(number: str, form: str, action, done: str):
    try:
        action()
    except (SchemaError, ServiceError) as exc:
        return _page(number, _problem(exc, form))
    flash(done, "success")
    return redirect(url_for(".request_page", number=number))


@bp.route("/requests/<string:number>/comment", methods=["POST"])
@login_required
def comment(number):
    def action():
        keys = ("body", "public") if me().is_staff else ("body",)
        data = helpers.load(CommentCreateSchema(), request.form, keys)
        service.comment_request(me(), number, data["body"], data["public"])

    return _act(number, "comment", action, gettext("Your reply has been added."))


@bp.route("/requests/<string:number>/transition", methods=["POST"])
@login_required
def transition(number):
    def action():
        data = helpers.load(RequestTransitionSchema(), request.form,
                            ("to", "version", "resolution_notes"))
        service.transition_request(me(), number, data)

    target = helpers.label(STATUS_LABELS, request.form.get("to"))
    return _act(number, "transition", action,
                gettext("Status changed to %(status)s.", status=target))


@bp.route("/requests/<string:number>/assign", methods=["POST"])
@staff_only
def assign(number):
    def action():
        data = helpers.load(RequestUpdateSchema(), request.form, ("group", "assignee", "version"),
                            nullable={"assignee"})
        service.update_request(me(), number, data)

    return _act(number, "assign", action, gettext("Assignment saved."))


# --- staff queue ---------------------------------------------------------------------


@bp.route("/console/requests")
@staff_only
def queue():
    """Open requests the agent may see, breaches next; filter by status, group, assignee."""
    raw = {key: value.strip() for key, value in request.args.items() if value.strip()}
    items, next_cursor, problem = [], None, None
    try:
        args = RequestQuerySchema(only=("status", "group", "assignee", "cursor"),
                                  unknown=RAISE).load(raw)
        cursor = args.pop("cursor", None)
        filters = args if args.get("status") else {"open": True, **args}
        items, next_cursor = service.list_requests(me(), filters, "due", cursor, PAGE_SIZE)
    except (SchemaError, ServiceError) as exc:
        problem = filter_refusal(exc)
    next_url = None
    if next_cursor:
        kept = {k: v for k, v in raw.items() if k != "cursor"}
        next_url = url_for(".queue", **kept, cursor=next_cursor)
    page = render_template("requests/queue.html", items=items, next_url=next_url,
                           problem=problem, current=raw, statuses=REQUEST_WORKFLOW.states,
                           groups=helpers.groups())
    return page, (problem["status"] if problem else 200)
