"""Report endpoints: the KPIs and the monthly category report, as JSON or CSV.

Thin: parse the query string (``servicedesk.reports.filters``: unknown keys and bad
values are a 422 naming the field), call the report, return JSON, or the CSV the
pages offer too when ``format=csv`` (an attachment).
"""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView

from servicedesk.api import actor, api_blueprint
from servicedesk.reports import export
from servicedesk.reports.categories import category_report
from servicedesk.reports.filters import (
    ID_FILTERS,
    SMALL_FILTERS,
    parse_month,
    parse_period,
    require_reader,
    wants_csv,
)
from servicedesk.reports.kpis import kpis, volume_series

blp = api_blueprint("api_reports", __name__,
                    "Reports: service-desk KPIs and the monthly category report.")


def _param(name: str, description: str, kind: str = "string", fmt: str | None = None):
    schema = {"type": kind, **({"format": fmt} if fmt else {})}
    return {"in": "query", "name": name, "required": False, "schema": schema,
            "description": description}


def _responses(what: str) -> dict:
    return {"200": {"description": what, "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/csv": {"schema": {"type": "string"}}}},
        "422": {"$ref": "#/components/responses/DEFAULT_ERROR"}}


FILTER_PARAMS = [
    _param("kind", "Ticket kind (incident, problem, change, request, ...)."),
    *[_param(key, f"Only tickets with this {key} id.", "integer") for key in ID_FILTERS],
    *[_param(key, f"Only tickets with this {key}.", "integer") for key in SMALL_FILTERS],
    _param("format", "json (default) or csv (a file to download)."),
]


def kpi_csv(actor_, filters):
    figures = kpis(actor_, filters)
    text = export.to_csv(export.KPI_HEADER,
                         export.kpi_rows(figures, volume_series(actor_, filters)))
    return export.csv_response(
        text, f"kpis-{figures['period']['from']}-{figures['period']['to']}.csv")


def category_csv(actor_, filters):
    report = category_report(actor_, filters)
    return export.csv_response(export.to_csv(export.CATEGORY_HEADER,
                                             export.category_rows(report)),
                               f"categories-{report['month']}.csv")


@blp.route("/reports/kpis")
class Kpis(MethodView):
    @blp.doc(parameters=[_param("from", "First day (YYYY-MM-DD, UTC).", fmt="date"),
                         _param("to", "Last day, inclusive (YYYY-MM-DD, UTC).", fmt="date"),
                         *FILTER_PARAMS], responses=_responses("The KPIs, or their CSV."))
    def get(self):
        """Every KPI for a period and filters (managers and admins), plus the volume
        series (per day, or per week for periods over 62 days)."""
        require_reader(actor())
        filters = parse_period(request.args)
        if wants_csv(request.args):
            return kpi_csv(actor(), filters)
        return current_app.json.response(
            {**kpis(actor(), filters), "series": volume_series(actor(), filters)})


@blp.route("/reports/categories")
class Categories(MethodView):
    @blp.doc(parameters=[_param("month", "The month (YYYY-MM, UTC); default this one."),
                         *FILTER_PARAMS],
             responses=_responses("The category report, or its CSV."))
    def get(self):
        """Share of the month's tickets per category, subcategory and CI, with the
        change against the month before (managers and admins)."""
        require_reader(actor())
        filters = parse_month(request.args)
        if wants_csv(request.args):
            return category_csv(actor(), filters)
        return current_app.json.response(category_report(actor(), filters))
