"""Impact analysis: what a CI's failure affects, computed in the database.

Direction, precisely (see cmdb.models for how relations map to dependencies):

- **downstream** of X: every CI that needs X, directly or through others: the CIs
  impacted when X fails. "payroll app runs on vm-01" puts the payroll app downstream
  of vm-01; "payroll app part of Payroll" puts the Payroll service downstream of the
  payroll app.
- **upstream** of X: everything X needs: where to look for the cause when X fails.

One recursive CTE (``WITH RECURSIVE``, the same SQL on SQLite and PostgreSQL) walks the
dependency columns of ``cmdb_relations`` breadth first from the root(s), carrying the
path walked as text (``/12/40/7/``). A step never enters a CI already on its own path,
so cycles in the data (which are allowed) are never followed twice, and the walk stops
at the depth limit. Each CI is reported once, at its shortest depth, with that path
(``ROW_NUMBER()`` over the CI). Paths multiply in dense graphs, so the walk is also
capped at ``WALK_CAP`` path rows (the outer ``LIMIT`` stops the recursion on both
databases); a capped answer says ``truncated`` and holds the nearest CIs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Text, cast, func, literal_column, select

from cmdb import access
from cmdb.classes import Catalog
from cmdb.models import CIClass, ConfigurationItem, Relation
from servicedesk.errors import ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User

CI = ConfigurationItem
DIRECTIONS = ("downstream", "upstream")
MAX_DEPTH = 10
DEFAULT_DEPTH = 5
WALK_CAP = 20_000
_SLASH = literal_column("'/'", Text)


@dataclass(frozen=True)
class CISummary:
    """What an impact answer shows of a CI (no attributes: thousands may be found)."""

    id: int
    name: str
    class_id: int
    status: str
    external_key: str | None
    ci_class: CIClass


_SUMMARY = (CI.id, CI.name, CI.class_id, CI.status, CI.external_key)


def _summary(row, catalog: Catalog) -> CISummary:
    return CISummary(row.id, row.name, row.class_id, row.status, row.external_key,
                     catalog.by_id[row.class_id])


@dataclass
class ImpactItem:
    ci: CISummary
    depth: int
    path: list[int]
    relation: str | None  # the type of the last hop


@dataclass
class Impact:
    roots: list[CI]
    direction: str
    depth: int
    items: list[ImpactItem]
    services: list[tuple]  # (CI or CISummary, "business" | "technical", depth)
    truncated: bool
    names: dict[int, object] = field(default_factory=dict)  # every CI on a path

    @property
    def ci_ids(self) -> list[int]:
        return [r.id for r in self.roots] + [i.ci.id for i in self.items]


def walk_statement(root_ids: list[int], direction: str, depth: int, cap: int):
    """SELECT ci_id, depth, path, via, walked: one row per CI reached (shortest path)."""
    rel = Relation.__table__
    if direction == "downstream":
        here, there = rel.c.dependency_id, rel.c.dependent_id
    else:
        here, there = rel.c.dependent_id, rel.c.dependency_id
    cis = CI.__table__
    seed = select(
        cis.c.id.label("ci_id"),
        literal_column("0").label("depth"),
        cast(_SLASH + cast(cis.c.id, Text) + _SLASH, Text).label("path"),
        cast(literal_column("NULL"), Text).label("via"),
    ).where(cis.c.id.in_(root_ids))
    walk = seed.cte("impact_walk", recursive=True)
    step = (
        select(there, walk.c.depth + 1, cast(walk.c.path + cast(there, Text) + _SLASH, Text),
               cast(rel.c.type, Text))
        .select_from(walk.join(rel, here == walk.c.ci_id))
        .where(walk.c.depth < depth,
               ~walk.c.path.contains(_SLASH + cast(there, Text) + _SLASH))
    )
    walk = walk.union_all(step)
    # The LIMIT stops the recursion itself (both databases produce CTE rows on demand).
    capped = select(walk).where(walk.c.depth > 0).limit(cap).subquery("capped")
    ranked = select(
        capped.c.ci_id, capped.c.depth, capped.c.path, capped.c.via,
        func.row_number().over(partition_by=capped.c.ci_id,
                               order_by=(capped.c.depth, capped.c.path)).label("rank"),
        func.count().over().label("walked"),
    ).subquery("ranked")
    return (select(ranked.c.ci_id, ranked.c.depth, ranked.c.path, ranked.c.via,
                   ranked.c.walked)
            .where(ranked.c.rank == 1, ranked.c.ci_id.not_in(root_ids)))


def check_params(direction: str, depth: int) -> None:
    errors = {}
    if direction not in DIRECTIONS:
        errors["direction"] = [_("One of: %(values)s.", values=", ".join(DIRECTIONS))]
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
        errors["depth"] = [_("From 1 to %(n)s.", n=MAX_DEPTH)]
    if errors:
        raise ValidationError(_("The impact query has invalid parameters."), fields=errors)


def analyse(roots: list[CI], direction: str = "downstream", depth: int = DEFAULT_DEPTH,
            cap: int = WALK_CAP, catalog: Catalog | None = None) -> Impact:
    """The impact of ``roots`` (no access check: callers check; see ``impact``)."""
    check_params(direction, depth)
    root_ids = [r.id for r in roots]
    catalog = catalog or Catalog.load()
    if not root_ids:
        return Impact([], direction, depth, [], [], False)
    walked = walk_statement(root_ids, direction, depth, cap).subquery("walked")
    rows = db.session.execute(
        select(*_SUMMARY, walked.c.depth, walked.c.path, walked.c.via, walked.c.walked)
        .join(walked, walked.c.ci_id == CI.id)
        .order_by(walked.c.depth, CI.name, CI.id)).all()
    truncated = bool(rows) and rows[-1].walked >= cap
    items = [ImpactItem(_summary(row, catalog), row.depth,
                        [int(p) for p in row.path.strip("/").split("/")], row.via)
             for row in rows]
    names = {ci.id: ci for ci in roots} | {item.ci.id: item.ci for item in items}
    missing = {i for item in items for i in item.path} - set(names)
    if missing:  # only when truncated: a path through CIs cut off by the cap
        names |= {row.id: _summary(row, catalog) for row in db.session.execute(
            select(*_SUMMARY).where(CI.id.in_(missing)))}
    service_types = catalog.service_class_ids()
    services = []
    if direction == "downstream":  # the roots' failure affects them (and any root that is one)
        services = [(r, service_types[r.class_id], 0) for r in roots
                    if r.class_id in service_types]
        services += [(i.ci, service_types[i.ci.class_id], i.depth) for i in items
                     if i.ci.class_id in service_types]
    services.sort(key=lambda s: (s[1] != "business", s[2], s[0].name.lower()))
    return Impact(list(roots), direction, depth, items, services, truncated, names)


def impact(actor: User | None, ci: CI, direction: str = "downstream",
           depth: int = DEFAULT_DEPTH) -> Impact:
    access.check_read(actor)
    return analyse([ci], direction, depth)


def open_tickets(actor: User | None, ci_ids: list[int], limit: int = 50) -> list[dict]:
    """Open tickets ``actor`` may see that name any of the CIs as affected.

    Tickets are the core's business, not the CMDB's: ``create_app`` wires the core's
    answer in as ``app.extensions["cmdb"]["open_tickets"]``; without it (the CMDB on its
    own) there are none.
    """
    provider = current_app.extensions.get("cmdb", {}).get("open_tickets")
    if provider is None or not ci_ids:
        return []
    return provider(actor, ci_ids, limit)


# --- neighbourhood (for the graph) ---------------------------------------------------


@dataclass
class Neighbourhood:
    center: CI
    levels: dict[int, int]          # CI id -> level: <0 needs the center, >0 it needs
    cis: dict[int, CI]
    edges: list[Relation]
    more: dict[int, int]            # level -> CIs not shown


def neighbourhood(actor: User | None, ci: CI, depth: int = 2, per_level: int = 10,
                  fetch: int = 200) -> Neighbourhood:
    """The CIs within ``depth`` hops of ``ci`` both ways, at most ``per_level`` per level
    (by name), and every relation among them. Bounded: at most 2 x ``depth`` queries of
    at most ``fetch`` rows, then one for the CIs and one for the relations."""
    access.check_read(actor)
    rel = Relation
    levels = {ci.id: 0}
    more: dict[int, int] = {}
    for sign, here, there in ((-1, rel.dependency_id, rel.dependent_id),
                              (1, rel.dependent_id, rel.dependency_id)):
        frontier = [ci.id]
        for step in range(1, depth + 1):
            if not frontier:
                break
            found = db.session.execute(
                select(there, CI.name).join(CI, CI.id == there)
                .where(here.in_(frontier)).order_by(CI.name, CI.id).limit(fetch)).all()
            new = []
            for other, _name in found:
                if other not in levels and other not in new:
                    new.append(other)
            shown = new[:per_level]
            hidden = len(new) - len(shown) + (1 if len(found) == fetch else 0)
            if hidden:
                more[sign * step] = hidden
            for other in shown:
                levels[other] = sign * step
            frontier = shown
    ids = list(levels)
    cis = {c.id: c for c in db.session.scalars(select(CI).where(CI.id.in_(ids)))}
    edges = list(db.session.scalars(select(Relation).where(
        Relation.source_id.in_(ids), Relation.target_id.in_(ids)).order_by(Relation.id)))
    return Neighbourhood(ci, levels, cis, edges, more)
