"""CMDB pages for IT staff: browse CIs, a CI with its graph, impact and open tickets,
and the class model. Read-only (changes go through the API and the import); thin: each
handler parses, calls services, renders. Requesters get a 404, as for every console
page."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, g, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import RAISE
from marshmallow import ValidationError as SchemaError
from markupsafe import Markup

from cmdb import access, classes, graph, service
from cmdb import impact as impacts
from cmdb.models import N_, RELATION_TYPES, STATUS_LABELS, STATUSES
from cmdb.schemas import CIQuerySchema
from servicedesk.errors import ServiceError
from servicedesk.extensions import db, login_manager

bp = Blueprint("cmdb", __name__)
PAGE_SIZE = 50
LIST_FILTERS = ("class", "status", "q", "cursor")


@bp.before_request
def _no_store():
    g.no_store = True


def staff_only(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not access.may_read(current_user._get_current_object()):
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def me():
    return current_user._get_current_object()


@bp.app_template_filter("ci_status_label")
def _status_label(value):
    return _(STATUS_LABELS[value]) if value in STATUS_LABELS else value


ACTION_LABELS = {"created": N_("Created"), "updated": N_("Updated"),
                 "relation_added": N_("Related"), "relation_removed": N_("Unrelated")}


@bp.app_template_filter("ci_action_label")
def _action_label(value):
    return _(ACTION_LABELS[value]) if value in ACTION_LABELS else value


@bp.app_template_filter("relation_label")
def _relation_label(value):
    """``depends_on`` -> "depends on"; ``~depends_on`` (history of the target) -> the
    inverse, "is needed by"."""
    inverse = isinstance(value, str) and value.startswith("~")
    kind = RELATION_TYPES.get(value[1:] if inverse else value) if value else None
    if kind is None:
        return value or ""
    return _(kind.inverse) if inverse else _(kind.name)


@bp.route("/cmdb")
@staff_only
def browse():
    """CIs by name, filtered by class, status and part of the name; 50 a page."""
    raw = {key: ",".join(v.strip() for v in values if v.strip())
           for key, values in request.args.lists() if key in LIST_FILTERS}
    raw = {key: value for key, value in raw.items() if value}
    rows, next_cursor, problem = [], None, None
    class_list, _catalog = classes.list_classes(me())
    try:
        args = CIQuerySchema(only=("class_", "status", "q", "cursor"), unknown=RAISE).load(raw)
        cursor = args.pop("cursor", None)
        rows, next_cursor = service.list_cis(me(), args, cursor, PAGE_SIZE)
    except SchemaError as exc:
        problem = {"status": 400, "message": _("The filter has unknown or invalid values."),
                   "fields": {k: [str(r) for r in (v if isinstance(v, list) else [v])]
                              for k, v in exc.messages.items()}}
    except ServiceError as exc:
        db.session.rollback()
        problem = {"status": 400, "message": exc.message, "fields": dict(exc.fields or {})}
    next_url = None
    if next_cursor:
        kept = {k: v for k, v in raw.items() if k != "cursor"}
        next_url = url_for(".browse", **kept, cursor=next_cursor)
    page = render_template("cmdb/browse.html", cis=rows, next_url=next_url, problem=problem,
                           current=raw, classes=class_list, statuses=STATUSES)
    return page, (problem["status"] if problem else 200)


@bp.route("/cmdb/cis/<int:ci_id>")
@staff_only
def ci_page(ci_id):
    """One CI: facts, attributes, relations, the neighbourhood graph, what its failure
    impacts (services, open tickets), its own open tickets, its history."""
    who = me()
    ci = service.get_ci(who, ci_id)
    catalog = classes.Catalog.load()
    outgoing, incoming = service.list_relations(who, ci.id)
    result = impacts.impact(who, ci, "downstream", impacts.DEFAULT_DEPTH)
    hood = impacts.neighbourhood(who, ci)
    svg = graph.render(hood, {row.id: row.name for row in catalog.by_id.values()},
                       catalog.service_class_ids(), lambda i: url_for(".ci_page", ci_id=i))
    definitions = catalog.attributes(ci.ci_class)
    references = [ci.attributes[d["name"]] for d in definitions
                  if d["type"] == "reference" and d["name"] in (ci.attributes or {})]
    referenced = service.find_cis(references) if references else {}
    own_tickets = impacts.open_tickets(who, [ci.id])
    affected_tickets = impacts.open_tickets(who, result.ci_ids)
    return render_template(
        "cmdb/ci.html", ci=ci, lineage=[catalog.by_key[k] for k in catalog.lineage(ci.ci_class)],
        definitions=definitions, referenced=referenced, outgoing=outgoing, incoming=incoming,
        relation_types=RELATION_TYPES, impact=result, graph=Markup(svg),
        own_tickets=own_tickets, affected_tickets=affected_tickets,
        history=service.list_history(who, ci.id),
        can_edit=access.may_edit(who),
    )


@bp.route("/cmdb/classes")
@staff_only
def class_list():
    """The class model: each class, its parent, its attributes (own and inherited)."""
    rows, catalog = classes.list_classes(me())
    counts = classes.class_counts()
    entries = [{"row": row, "parent": catalog.parent_of(row),
                "attributes": catalog.attributes(row), "count": counts.get(row.id, 0),
                "service_type": catalog.service_type(row)} for row in rows]
    return render_template("cmdb/classes.html", classes=entries)
