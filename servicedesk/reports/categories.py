"""The monthly category report: where the load comes from, and how that moved.

For a month (tickets *opened* in it, every kind unless filtered, as the actor may see
them) and the month before: tickets per category, per subcategory and per CI, each
with its share of the month's tickets and the change of that share in percentage
points. ``trend`` is "up" / "down" beyond ±``FLAT_POINTS`` points, else "flat".

A ticket counts once per category and subcategory (uncategorised ones in a row with
id None), and once for each CI it names (its ``ci_id`` and its affected CIs), so CI
shares may add up to more than 100 %; tickets naming none are the CI row with id None.
"""

from __future__ import annotations

from sqlalchemy import func, select, union
from sqlalchemy.orm import aliased

from servicedesk.cmdb_links import CI, ticket_cis
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.reports.filters import Filters, previous_month, require_reader
from servicedesk.reports.kpis import rate
from servicedesk.reports.stats import report_settings
from servicedesk.tickets.models import Category, Ticket

FLAT_POINTS = 0.5
SECTIONS = ("categories", "subcategories", "cis")


def _month_counts(actor: User, filters: Filters) -> tuple[int, dict]:
    where = [*filters.clauses(actor), filters.within(Ticket.created_at)]
    total = db.session.scalar(select(func.count()).select_from(Ticket).where(*where))
    counts = {
        "categories": dict(db.session.execute(
            select(Ticket.category_id, func.count()).where(*where)
            .group_by(Ticket.category_id)).all()),
        "subcategories": {(c, s): n for c, s, n in db.session.execute(
            select(Ticket.category_id, Ticket.subcategory_id, func.count()).where(*where)
            .group_by(Ticket.category_id, Ticket.subcategory_id)).all()},
    }
    ids = select(Ticket.id).where(*where)
    links = union(
        select(ticket_cis.c.ticket_id, ticket_cis.c.ci_id).where(ticket_cis.c.ticket_id.in_(ids)),
        select(Ticket.id, Ticket.ci_id).where(*where, Ticket.ci_id.isnot(None)),
    ).subquery()
    per_ci = dict(db.session.execute(
        select(links.c.ci_id, func.count()).group_by(links.c.ci_id)).all())
    named = db.session.scalar(select(func.count(func.distinct(links.c.ticket_id))))
    if total - named:
        per_ci[None] = total - named
    counts["cis"] = per_ci
    return total, counts


def _names(counts_now: dict, counts_before: dict) -> dict:
    category_ids = {k for k in (*counts_now["categories"], *counts_before["categories"]) if k}
    for pair in (*counts_now["subcategories"], *counts_before["subcategories"]):
        category_ids.update(k for k in pair if k)
    parent = aliased(Category)
    categories = {}
    if category_ids:
        for id_, name, parent_name in db.session.execute(
                select(Category.id, Category.name, parent.name)
                .outerjoin(parent, parent.id == Category.parent_id)
                .where(Category.id.in_(category_ids))).all():
            categories[id_] = f"{parent_name} / {name}" if parent_name else name
    ci_ids = {k for k in (*counts_now["cis"], *counts_before["cis"]) if k}
    cis = dict(db.session.execute(select(CI.id, CI.name).where(CI.id.in_(ci_ids))).all()) \
        if ci_ids else {}
    return {"categories": categories, "cis": cis}


def _label(section: str, key, names: dict) -> str | None:
    if section == "cis":
        return names["cis"].get(key, f"#{key}") if key is not None else None
    if section == "subcategories":
        category, sub = key
        if sub is not None:
            return names["categories"].get(sub, f"#{sub}")
        return names["categories"].get(category, f"#{category}") if category else None
    return names["categories"].get(key, f"#{key}") if key is not None else None


def _rows(section: str, now: dict, before: dict, total: int, total_before: int,
          names: dict) -> list[dict]:
    rows = []
    for key in set(now) | set(before):
        count, previous = now.get(key, 0), before.get(key, 0)
        share, previous_share = rate(count, total), rate(previous, total_before)
        change = round(((share or 0) - (previous_share or 0)) * 100, 1)
        row = {"name": _label(section, key, names), "tickets": count, "share": share,
               "previous_tickets": previous, "previous_share": previous_share,
               "change_points": change,
               "trend": "up" if change > FLAT_POINTS else "down" if change < -FLAT_POINTS
               else "flat"}
        if section == "subcategories":
            row.update(category_id=key[0], subcategory_id=key[1])
        else:
            row["id"] = key
        rows.append(row)
    rows.sort(key=lambda r: (-r["tickets"], -r["previous_tickets"], r["name"] or "\uffff"))
    return rows


def category_report(actor: User, filters: Filters) -> dict:
    """Shares per category, subcategory and CI of ``filters``' month, with the trend."""
    require_reader(actor)
    report_settings()
    before = previous_month(filters)
    total, counts = _month_counts(actor, filters)
    total_before, counts_before = _month_counts(actor, before)
    names = _names(counts, counts_before)
    return {
        "month": filters.first_day.strftime("%Y-%m"),
        "previous_month": before.first_day.strftime("%Y-%m"),
        "filters": dict(filters.values),
        "tickets": total,
        "previous_tickets": total_before,
        **{section: _rows(section, counts[section], counts_before[section], total,
                          total_before, names) for section in SECTIONS},
    }
