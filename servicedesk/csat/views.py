"""Survey pages: the e-mailed link (no login: the signed token is the credential) and
the portal's rating form. Thin: parse, call one service function, redirect or re-render.

Nothing changes on GET: ``/survey/<token>?rating=4`` (the e-mail's one-click buttons)
only preselects 4 in the form; the answer is recorded by its POST. The token routes are
CSRF-exempt: there is no ambient credential (cookie) for a forged form to ride on.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_required

from servicedesk.csat import service
from servicedesk.errors import ServiceError
from servicedesk.extensions import csrf, db

bp = Blueprint("csat", __name__)


@bp.before_request
def _no_store():
    g.no_store = True  # a link's page is personal: keep it out of shared caches


@bp.app_template_global("csat_prompt")
def csat_prompt(ticket):
    """The survey the portal page should ask the signed-in requester about, or None."""
    if not current_user.is_authenticated:
        return None
    return service.pending_prompt(current_user._get_current_object(), ticket)


def _selected(value) -> int | None:
    try:
        rating = int(value)
    except (TypeError, ValueError):
        return None
    return rating if 1 <= rating <= 5 else None


def _page(token: str, problem: dict | None = None, status: int = 200):
    try:
        survey = service.survey_for_token(token)
    except ServiceError as exc:
        db.session.rollback()
        return render_template("error.html", status=exc.status, message=exc.message), exc.status
    values = request.form if request.method == "POST" else request.args
    return render_template(
        "csat/survey.html", survey=survey, ticket=survey.ticket, token=token,
        selected=_selected(values.get("rating")), comment=values.get("comment", ""),
        can_reopen=service.can_reopen(survey), window_days=service.reopen_window().days,
        problem=problem,
    ), status


@bp.route("/survey/<string:token>")
def survey_page(token):
    return _page(token)


@bp.route("/survey/<string:token>", methods=["POST"])
@csrf.exempt
def survey_answer(token):
    try:
        service.answer_by_token(token, request.form.get("rating"), request.form.get("comment"))
    except ServiceError as exc:
        db.session.rollback()
        return _page(token, {"status": exc.status, "message": exc.message,
                             "fields": dict(exc.fields)}, exc.status)
    flash(gettext("Thank you for your feedback."), "success")
    return redirect(url_for(".survey_page", token=token))


@bp.route("/survey/<string:token>/reopen", methods=["POST"])
@csrf.exempt
def survey_reopen(token):
    try:
        ticket = service.reopen_by_token(token)
    except ServiceError as exc:
        db.session.rollback()
        return _page(token, {"status": exc.status, "message": exc.message,
                             "fields": dict(exc.fields)}, exc.status)
    flash(gettext("%(number)s has been reopened.", number=ticket.number), "success")
    return redirect(url_for(".survey_page", token=token))


@bp.route("/portal/incidents/<string:number>/survey", methods=["POST"])
@login_required
def portal_rate(number):
    from servicedesk.incidents.service import get_incident

    user = current_user._get_current_object()
    try:
        incident = get_incident(user, number)
        service.answer_for_ticket(user, incident, request.form.get("rating"),
                                  request.form.get("comment"))
    except ServiceError as exc:
        from servicedesk.incidents.views import _portal_page

        db.session.rollback()
        if exc.status == 404:
            raise
        return _portal_page(number, {"form": "survey", "status": exc.status,
                                     "message": exc.message, "fields": dict(exc.fields)})
    flash(gettext("Thank you for your feedback."), "success")
    return redirect(url_for("incidents.portal_incident", number=number))
