"""Tickets and configuration items: the core's side of the CMDB.

The CMDB (top-level ``cmdb``) knows nothing of tickets; the core depends on it. This
module holds what joins the two:

- ``ticket_cis``: which CIs a ticket (of any kind) names as affected;
- resolving ``affected_cis`` from ticket input (CI ids or external keys), setting them
  on a ticket with an audit entry, and reading them back (for one ticket, or as a
  column of the incident list's single statement);
- the services a ticket's CIs impact (the CMDB's downstream impact analysis);
- the open tickets on given CIs that an actor may see, which ``create_app`` hands to
  the CMDB (``app.extensions["cmdb"]["open_tickets"]``) for its impact answers and CI
  pages.
"""

from __future__ import annotations

import json
from datetime import datetime

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import ForeignKey, Index, delete, insert, literal_column, select
from werkzeug.routing import BuildError

from cmdb import service as cmdb
from cmdb.impact import MAX_DEPTH, analyse
from cmdb.models import CIClass, ConfigurationItem
from servicedesk.extensions import db
from servicedesk.sqljson import json_array_agg, json_object
from servicedesk.identity.models import User
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.service import record
from servicedesk.types import utcnow

CI = ConfigurationItem
FIELD = "affected_cis"
MAX_AFFECTED = 50

ticket_cis = db.Table(
    "ticket_cis",
    db.Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    db.Column("ci_id", ForeignKey("cmdb_cis.id"), primary_key=True),
    # "Open tickets on these CIs" starts from the CI.
    Index("ix_ticket_cis_ci", "ci_id", "ticket_id"),
)

# The page of each ticket kind, by endpoint name (the CMDB's "open tickets on this CI").
TICKET_PAGES = {"incident": "incidents.console_incident", "problem": "problems.console_problem",
                "change": "changes.page", "request": "requests.request_page"}


# --- reading a ticket's CIs ----------------------------------------------------------


def brief(ci_id: int, name: str, class_key: str, external_key: str | None) -> dict:
    """A ticket's affected CI as the API shows it (the list builds the same in SQL)."""
    return {"id": ci_id, "name": name, "class": class_key, "external_key": external_key}


def affected_cis(ticket: Ticket) -> list[dict]:
    """The ticket's affected CIs (by id); what the service just set, else one query."""
    cached = ticket.__dict__.get("_affected_cis")
    if cached is not None:
        return cached
    rows = db.session.execute(
        select(CI.id, CI.name, CIClass.key, CI.external_key)
        .join(ticket_cis, ticket_cis.c.ci_id == CI.id)
        .join(CIClass, CIClass.id == CI.class_id)
        .where(ticket_cis.c.ticket_id == ticket.id).order_by(CI.id)).all()
    result = [brief(*row) for row in rows]
    ticket.__dict__["_affected_cis"] = result
    return result


def affected_cis_column(ticket_id):
    """A correlated subquery: the ticket's affected CIs as one JSON array (decode with
    ``decode_column``), so a list page stays one statement."""
    pairs = []
    for key, column in (("id", CI.id), ("name", CI.name), ("class", CIClass.key),
                        ("external_key", CI.external_key)):
        pairs += [literal_column(f"'{key}'"), column]
    return (select(json_array_agg(json_object(*pairs)))
            .select_from(ticket_cis)
            .join(CI, CI.id == ticket_cis.c.ci_id)
            .join(CIClass, CIClass.id == CI.class_id)
            .where(ticket_cis.c.ticket_id == ticket_id)
            .scalar_subquery())


def decode_column(value) -> list[dict]:
    """``affected_cis_column``'s value (JSON text on SQLite, decoded on PostgreSQL) as
    ``affected_cis`` gives it: by CI id."""
    items = json.loads(value) if isinstance(value, str) else (value or [])
    return sorted((brief(i["id"], i["name"], i["class"], i["external_key"]) for i in items),
                  key=lambda i: i["id"])


def with_affected_cis(rows) -> list:
    """The tickets of ``rows`` (``(ticket, affected_cis_column)`` pairs from one list
    statement), each with its CIs cached where ``affected_cis`` reads them."""
    tickets = []
    for ticket, cis in rows:
        ticket.__dict__["_affected_cis"] = decode_column(cis)
        tickets.append(ticket)
    return tickets


# --- writing -------------------------------------------------------------------------


def resolve(refs) -> list[CI]:
    """The CIs named by ``refs`` (ids or external keys), or a 422 naming affected_cis."""
    from servicedesk.errors import ValidationError

    refs = list(refs or [])
    if len(refs) > MAX_AFFECTED:
        raise ValidationError(_("At most %(n)s affected CIs.", n=MAX_AFFECTED),
                              fields={FIELD: [_("Too many.")]})
    cis = cmdb.resolve_refs(refs, FIELD)
    if cis:  # the class keys for the response, in one query
        keys = dict(db.session.execute(select(CIClass.id, CIClass.key).where(
            CIClass.id.in_({ci.class_id for ci in cis}))).all())
        for ci in cis:
            ci.class_key = keys[ci.class_id]
    return cis


def _shown(items: list[dict]) -> str | None:
    return ", ".join(f"{i['name']} (#{i['id']})" for i in items) or None


def set_affected_cis(ticket: Ticket, actor: User | None, cis: list[CI], action: str,
                     at: datetime | None = None, new: bool = False):
    """Make ``cis`` the ticket's affected CIs; the audit entry, or None if unchanged.

    ``new``: the ticket was just created (it has none yet: nothing to read)."""
    old = [] if new else affected_cis(ticket)
    wanted = sorted((brief(ci.id, ci.name, ci.class_key, ci.external_key) for ci in cis),
                    key=lambda i: i["id"])
    ticket.__dict__["_affected_cis"] = wanted
    old_ids, new_ids = {i["id"] for i in old}, {i["id"] for i in wanted}
    if old_ids == new_ids:
        return None
    if not new:  # a change of the ticket: its version moves (optimistic locking)
        ticket.updated_at = at or utcnow()
    if old_ids - new_ids:
        db.session.execute(delete(ticket_cis).where(
            ticket_cis.c.ticket_id == ticket.id, ticket_cis.c.ci_id.in_(old_ids - new_ids)))
    if new_ids - old_ids:
        db.session.execute(insert(ticket_cis), [
            {"ticket_id": ticket.id, "ci_id": i} for i in sorted(new_ids - old_ids)])
    return record(ticket, actor, action, FIELD, _shown(old), _shown(wanted), at)


def mark_none(ticket: Ticket) -> None:
    """A new ticket without CIs: say so, so reading them back costs no query."""
    ticket.__dict__["_affected_cis"] = []


def set_created_cis(ticket: Ticket, actor: User | None, cis: list[CI],
                    at: datetime | None = None) -> None:
    """The affected CIs of a ticket just created (flushed): ``cis``, audited, or none."""
    if cis:
        set_affected_cis(ticket, actor, cis, "created", at=at, new=True)
    else:
        mark_none(ticket)


# --- impact --------------------------------------------------------------------------


def impacted_services(ticket: Ticket) -> list[dict]:
    """The services (business first) that depend on the ticket's CIs, or are them."""
    ids = [i["id"] for i in affected_cis(ticket)]
    if not ids:
        return []
    roots = list(db.session.scalars(select(CI).where(CI.id.in_(ids))))
    result = analyse(roots, "downstream", MAX_DEPTH)
    return [{"id": ci.id, "name": ci.name, "class": ci.ci_class.key,
             "service_type": kind, "depth": depth} for ci, kind, depth in result.services]


def open_tickets_for(actor: User | None, ci_ids: list[int], limit: int = 50) -> list[dict]:
    """Open tickets ``actor`` may see naming any of ``ci_ids``, most urgent first; each
    with the ones of ``ci_ids`` it names (``ci_ids``) and its page (``url``)."""
    ids = sorted(set(ci_ids))
    chunks = [ids[i:i + 5000] for i in range(0, len(ids), 5000)]  # SQLite's parameter cap
    found = {}
    for chunk in chunks:
        named = select(ticket_cis.c.ticket_id).where(ticket_cis.c.ci_id.in_(chunk))
        for row in db.session.execute(
                select(Ticket.id, Ticket.number, Ticket.kind, Ticket.title, Ticket.status,
                       Ticket.priority, Ticket.created_at)
                .where(Ticket.id.in_(named), Ticket.is_open,
                       visible_tickets_clause(actor, Ticket))
                .order_by(Ticket.priority, Ticket.created_at, Ticket.id).limit(limit)):
            found[row.id] = row
    top = sorted(found.values(), key=lambda t: (t.priority, t.created_at, t.id))[:limit]
    links: dict[int, list[int]] = {t.id: [] for t in top}
    for chunk in chunks if top else []:
        for ticket_id, ci_id in db.session.execute(
                select(ticket_cis.c.ticket_id, ticket_cis.c.ci_id).where(
                    ticket_cis.c.ticket_id.in_(list(links)), ticket_cis.c.ci_id.in_(chunk))):
            links[ticket_id].append(ci_id)
    return [{"number": t.number, "kind": t.kind, "title": t.title, "status": t.status,
             "priority": t.priority, "ci_ids": sorted(links[t.id]),
             "url": _page(t.kind, t.number)} for t in top]


def _page(kind: str, number: str) -> str | None:
    endpoint = TICKET_PAGES.get(kind)
    if endpoint is None:
        return None
    try:
        return url_for(endpoint, number=number)
    except (BuildError, RuntimeError):  # no request context (CLI) or no such page
        return None


def incident_summary(ticket: Ticket) -> dict:
    """What the console's incident page shows of the CMDB."""
    return {"cis": affected_cis(ticket), "services": impacted_services(ticket)}


def seed_demo(incident_title: str = "Cannot open shared mailbox") -> None:
    """The demo estate (cmdb.seed), and the demo mailbox incident on the mail server."""
    from cmdb.seed import seed_demo_cis

    seed_demo_cis()
    ticket = db.session.scalars(select(Ticket).where(Ticket.title == incident_title)
                                .order_by(Ticket.id).limit(1)).first()
    mail = cmdb.find_cis(["app-mail"]).get("app-mail")
    if ticket is not None and mail is not None and not affected_cis(ticket):
        mail.class_key = db.session.get(CIClass, mail.class_id).key
        set_affected_cis(ticket, None, [mail], "updated")
        db.session.commit()
