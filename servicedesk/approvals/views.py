"""The approval inbox page, and the decision form every ticket page's panel posts to.

Thin like the API: parse the form with the API's schema, call one service function,
redirect with a flash (POST/redirect/GET), or re-render the inbox with the reasons and
a 4xx status. Nothing changes on GET.
"""

from __future__ import annotations

import re

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_required
from marshmallow import ValidationError as SchemaError

from servicedesk.approvals import service
from servicedesk.approvals.schemas import DecisionCreateSchema
from servicedesk.errors import ServiceError
from servicedesk.extensions import db

bp = Blueprint("approvals", __name__)


@bp.app_template_global()
def approvals_waiting() -> bool:
    """For the nav: whether the signed-in user has approvals to decide. Staff always
    see the link; a line manager who is a plain employee sees it while something
    waits for them (one small query per page, for them only)."""
    if not current_user.is_authenticated:
        return False
    if "approvals_waiting" not in g:
        g.approvals_waiting = service.has_pending(current_user._get_current_object())
    return g.approvals_waiting


@bp.before_request
def _no_store():
    g.no_store = True


def me():
    return current_user._get_current_object()


def _local(path: str | None) -> str | None:
    """``next`` only if it is a path on this site: no scheme, no host, and nothing a
    browser would drop or rewrite into one (``//evil``, ``/\\evil``, ``/<TAB>/evil``)."""
    if not path or not _LOCAL_PATH.fullmatch(path):
        return None
    return path


_LOCAL_PATH = re.compile(r"/(?![/\\])[^\\\s\x00-\x1f\x7f]*")


def _inbox(problem: dict | None = None, status: int = 200):
    actor = me()
    pending = service.pending_for(actor)
    items = [(service.to_dict(a, actor), a.ticket.description) for a in pending]
    return render_template("approvals/inbox.html", items=items, problem=problem,
                           ticket_url=service.ticket_url), status


@bp.route("/approvals")
@login_required
def inbox():
    return _inbox()


@bp.route("/approvals/<int:approval_id>/decision", methods=["POST"])
@login_required
def decide(approval_id):
    target = _local(request.form.get("next"))
    try:
        data = DecisionCreateSchema().load({
            "decision": request.form.get("decision", ""),
            "comment": request.form.get("comment") or None,
        })
        approval = service.decide(me(), approval_id, data["decision"], data["comment"])
    except (SchemaError, ServiceError) as exc:
        db.session.rollback()
        if isinstance(exc, ServiceError) and exc.status == 404:
            raise
        if isinstance(exc, SchemaError):
            problem = {"status": 422, "message": gettext("Some fields are missing or invalid."),
                       "fields": {k: v if isinstance(v, list) else [str(v)]
                                  for k, v in exc.messages.items()}}
        else:
            problem = {"status": exc.status, "message": exc.message,
                       "fields": dict(exc.fields or {})}
        if target:
            flash(problem["message"] + "".join(
                f" {' '.join(reasons)}" for reasons in problem["fields"].values()), "error")
            return redirect(target)
        return _inbox(problem, problem["status"])
    messages = {
        "approved": gettext("%(label)s of %(number)s: approved.",
                            label=approval.label, number=approval.ticket.number),
        "rejected": gettext("%(label)s of %(number)s: rejected.",
                            label=approval.label, number=approval.ticket.number),
    }
    flash(messages.get(approval.status, gettext(
        "Your decision on %(number)s is recorded; other approvers still have to decide.",
        number=approval.ticket.number)), "success")
    return redirect(target or url_for(".inbox"))
