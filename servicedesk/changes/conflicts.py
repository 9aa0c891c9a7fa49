"""Conflict detection: other changes planned to overlap this one on the same CI, or on
a CI related to one of its CIs through the CMDB's dependencies (either way, up to
``DEPTH`` hops; the walk is the CMDB's own impact query, ``cmdb.impact.analyse``).
Shown before authorization; a conflict warns, it does not block."""

from __future__ import annotations

from sqlalchemy import select

from cmdb.impact import analyse
from cmdb.models import ConfigurationItem
from servicedesk import cmdb_links
from servicedesk.changes.models import Change
from servicedesk.extensions import db

DEPTH = 3
# Changes that may still happen (a draft is not a plan yet).
LIVE = ("assessment", "authorization", "scheduled", "implementing")


def find_conflicts(change: Change) -> list[dict]:
    """Each overlapping live change with the CIs that tie it to this one and why."""
    if change.planned_start is None or change.planned_end is None:
        return []
    own = {ci["id"]: ci["name"] for ci in cmdb_links.affected_cis(change)}
    if not own:
        return []
    roots = list(db.session.scalars(select(ConfigurationItem)
                                    .where(ConfigurationItem.id.in_(own))))
    # CI id -> (relation, the own CI it ties to): same CI, depends on it, it depends on.
    related: dict[int, tuple[str, int]] = {ci_id: ("same", ci_id) for ci_id in own}
    for direction, relation in (("downstream", "depends_on_ours"),
                                ("upstream", "ours_depends_on")):
        impact = analyse(roots, direction, DEPTH)
        for item in impact.items:
            related.setdefault(item.ci.id, (relation, item.path[0]))
    ticket_cis = cmdb_links.ticket_cis
    rows = db.session.execute(
        select(Change.number, Change.title, Change.status, Change.planned_start,
               Change.planned_end, ticket_cis.c.ci_id, ConfigurationItem.name)
        .select_from(Change)
        .join(ticket_cis, ticket_cis.c.ticket_id == Change.id)
        .join(ConfigurationItem, ConfigurationItem.id == ticket_cis.c.ci_id)
        .where(Change.id != change.id, Change.status.in_(LIVE),
               Change.planned_start < change.planned_end,
               Change.planned_end > change.planned_start,
               ticket_cis.c.ci_id.in_(list(related)))
        .order_by(Change.planned_start, Change.number, ticket_cis.c.ci_id)).all()
    found: dict[str, dict] = {}
    for number, title, status, start, end, ci_id, ci_name in rows:
        entry = found.setdefault(number, {
            "number": number, "title": title, "status": status,
            "planned_start": start, "planned_end": end, "cis": []})
        relation, ours = related[ci_id]
        entry["cis"].append({"id": ci_id, "name": ci_name, "relation": relation,
                             "our_ci": {"id": ours, "name": own.get(ours)}})
    return list(found.values())
