"""CSV of every report: the same figures the API returns, one row per figure.

Spreadsheet formula injection: a text cell starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return gets a leading apostrophe, so a category or CI named
``=HYPERLINK(...)`` is shown, never run. Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io

from flask import Response

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(header: list[str], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def csv_response(text: str, filename: str) -> Response:
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


KPI_HEADER = ["section", "metric", "value"]


def kpi_rows(figures: dict, series: list[dict]) -> list[list]:
    """The KPI report flattened to (section, metric, value)."""
    rows = [["period", "from", figures["period"]["from"]],
            ["period", "to", figures["period"]["to"]]]
    rows += [["filter", key, value] for key, value in figures["filters"].items()]
    rows += [["volume", key, value] for key, value in figures["volume"].items()]
    backlog = figures["backlog"]
    rows += [["backlog", key, value] for key, value in backlog.items() if key != "age_buckets"]
    rows += [["backlog age", b["bucket"], b["open"]] for b in backlog["age_buckets"]]
    for section in ("first_response", "resolution"):
        rows += [[section, key, value] for key, value in figures[section].items()
                 if key != "distribution"]
        rows += [[f"{section} distribution", b["bucket"], b["tickets"]]
                 for b in figures[section]["distribution"]]
    for metric, values in figures["sla_compliance"].items():
        rows += [[f"sla_compliance {metric}", key, value] for key, value in values.items()]
    rows.append(["rates", "reopen_rate", figures["reopen_rate"]])
    rows.append(["rates", "first_contact_resolution_rate",
                 figures["first_contact_resolution_rate"]])
    for line in figures["escalation_rate"]:
        rows += [[f"escalation L{line['line']}", key, line[key]]
                 for key in ("reached", "escalated", "rate")]
    rows += [["csat", key, value] for key, value in figures["csat"].items()]
    rows += [["deflection", key, value] for key, value in figures["deflection"].items()]
    for point in series:
        rows.append(["opened per period", point["start"], point["opened"]])
        rows.append(["resolved per period", point["start"], point["resolved"]])
    return rows


CATEGORY_HEADER = ["section", "id", "category_id", "name", "tickets", "share",
                   "previous_tickets", "previous_share", "change_points", "trend"]


def category_rows(report: dict) -> list[list]:
    rows = []
    for section in ("categories", "subcategories", "cis"):
        for r in report[section]:
            ident = r.get("id") if section != "subcategories" else r["subcategory_id"]
            parent = r["category_id"] if section == "subcategories" else None
            rows.append([section, ident, parent, r["name"], r["tickets"], r["share"],
                         r["previous_tickets"], r["previous_share"], r["change_points"],
                         r["trend"]])
    return rows
