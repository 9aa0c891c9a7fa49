"""Report pages: the KPI dashboard and the monthly category report, each with its CSV.

Thin: parse the same query string as the API (``servicedesk.reports.filters``), call
the report, render. A bad filter re-renders the page with the default filters and the
problem named (422). Managers and admins only: anyone else gets the 403 page.
"""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from servicedesk.errors import ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import STAFF_ROLES, Group, User
from servicedesk.reports import charts
from servicedesk.reports.api import category_csv, kpi_csv
from servicedesk.reports.categories import category_report
from servicedesk.reports.filters import kinds, parse_month, parse_period, require_reader
from servicedesk.reports.kpis import kpis, volume_series
from servicedesk.tickets.admin import list_categories

bp = Blueprint("reports", __name__)


def me() -> User:
    return current_user._get_current_object()


@bp.before_request
def _readers_only():
    g.no_store = True  # figures about people and groups: keep them out of shared caches
    if current_user.is_authenticated:
        require_reader(me())


def _parsed(parse, args):
    """(filters, problem): the request's filters, or the defaults and what was wrong."""
    try:
        return parse(args), None
    except ValidationError as exc:
        return parse({}), {"status": exc.status, "message": exc.message,
                           "fields": dict(exc.fields or {})}


def _choices() -> dict:
    return {
        "kinds": kinds(),
        "groups": db.session.scalars(select(Group).order_by(Group.support_line, Group.name)).all(),
        "agents": db.session.scalars(
            select(User).where(User.role.in_(STAFF_ROLES), User.active.is_(True))
            .order_by(User.username)).all(),
        "categories": list_categories(),
    }


@bp.route("/reports")
@login_required
def dashboard():
    filters, problem = _parsed(parse_period, request.args)
    figures = kpis(me(), filters)
    series = volume_series(me(), filters)
    volume_chart = charts.bar_chart(
        series, "start", [("opened", _("Opened")), ("resolved", _("Resolved"))],
        _("Tickets opened and resolved"))
    resolution_chart = charts.bar_chart(
        figures["resolution"]["distribution"], "bucket", [("tickets", _("Tickets"))],
        _("Resolution time (business hours)"))
    page = render_template("reports/dashboard.html", figures=figures, filters=filters,
                           series=series, volume_chart=volume_chart,
                           resolution_chart=resolution_chart, problem=problem,
                           csv_args=filters.query_args(format="csv"), **_choices())
    return page, (problem["status"] if problem else 200)


@bp.route("/reports/kpis.csv")
@login_required
def dashboard_csv():
    return kpi_csv(me(), parse_period(request.args))


@bp.route("/reports/categories")
@login_required
def categories():
    filters, problem = _parsed(parse_month, request.args)
    report = category_report(me(), filters)
    args = {k: v for k, v in filters.values.items()}
    page = render_template("reports/categories.html", report=report, filters=filters,
                           share_bar=charts.share_bar, problem=problem,
                           csv_args={"month": report["month"], **args}, **_choices())
    return page, (problem["status"] if problem else 200)


@bp.route("/reports/categories.csv")
@login_required
def categories_csv():
    return category_csv(me(), parse_month(request.args))
