"""REST endpoints of the CMDB under /api/v1/cmdb: thin; each parses, calls one service
function, dumps. IT staff read; managers and admins change CIs and relations; admins
change classes; requesters get 403 (cmdb.access)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_babel import gettext as _
from marshmallow import RAISE

from cmdb import classes, graph, importer, service
from cmdb import impact as impacts
from cmdb.models import RELATION_TYPES
from cmdb.schemas import (
    CICreateSchema,
    CIHistorySchema,
    CIPageSchema,
    CIQuerySchema,
    CIRelationsSchema,
    CISchema,
    CIUpdateSchema,
    ClassCreateSchema,
    ClassSchema,
    ClassUpdateSchema,
    ImpactQuerySchema,
    ImpactSchema,
    ImportQuerySchema,
    ImportReportSchema,
    ImportSchema,
    RelationCreateSchema,
    RelationSchema,
    RelationTypeSchema,
    SyncResultSchema,
    TicketBriefSchema,
    TicketQuerySchema,
)
from servicedesk.api import actor, api_blueprint

blp = api_blueprint("api_cmdb", __name__,
                    "CMDB: CI classes, configuration items, relations, impact, import.")


def present_class(row, catalog):
    """Decorate a class with what its schema shows beyond its columns."""
    parent = catalog.parent_of(row)
    row.parent_key = parent.key if parent else None
    row.all_attributes = catalog.attributes(row)
    row.ci_count = getattr(row, "ci_count", None)
    return row


def present_relation(relation):
    kind = RELATION_TYPES[relation.type]
    relation.type_name, relation.inverse_name = _(kind.name), _(kind.inverse)
    return relation


def ci_url(ci_id: int) -> str:
    from flask import url_for

    return url_for("cmdb.ci_page", ci_id=ci_id)


def impact_body(who, ci, result) -> dict:
    """The impact answer: the CIs with their paths, the services, the open tickets."""
    names = result.names
    return {
        "root": ci,
        "direction": result.direction,
        "depth": result.depth,
        "truncated": result.truncated,
        "count": len(result.items),
        "items": [{"ci": item.ci, "depth": item.depth, "relation": item.relation,
                   "path": [names[i] for i in item.path if i in names]}
                  for item in result.items],
        "services": [{"ci": c, "service_type": kind, "depth": depth}
                     for c, kind, depth in result.services],
        "open_tickets": impacts.open_tickets(who, result.ci_ids)
        if result.direction == "downstream" else [],
    }


# --- classes -------------------------------------------------------------------------


@blp.route("/cmdb/classes")
class Classes(MethodView):
    @blp.response(200, ClassSchema(many=True))
    def get(self):
        """Every CI class, by name (IT staff)."""
        rows, catalog = classes.list_classes(actor())
        counts = classes.class_counts()
        for row in rows:
            row.ci_count = counts.get(row.id, 0)
        return [present_class(row, catalog) for row in rows]

    @blp.arguments(ClassCreateSchema)
    @blp.response(201, ClassSchema)
    def post(self, data):
        """Create a class (admins): key, name, parent, service type, attributes."""
        row = classes.create_class(actor(), data)
        return present_class(row, classes.Catalog.load())


@blp.route("/cmdb/classes/sync", methods=["POST"])
@blp.response(200, SyncResultSchema)
def sync_classes():
    """Write the classes plugins define to the table now (admins); idempotent."""
    created, updated = classes.sync_plugin_classes_now(actor())
    return {"created": created, "updated": updated}


@blp.route("/cmdb/classes/<string:key>")
class ClassDetail(MethodView):
    @blp.response(200, ClassSchema)
    def get(self, key):
        """One class with its inherited attributes (IT staff)."""
        row, catalog = classes.get_class(actor(), key)
        return present_class(row, catalog)

    @blp.arguments(ClassUpdateSchema)
    @blp.response(200, ClassSchema)
    def put(self, data, key):
        """Change a class (admins): the fields given; ``version`` must be the one read.
        Existing CIs are checked against the new definition at their next change."""
        row = classes.update_class(actor(), key, data)
        return present_class(row, classes.Catalog.load())

    @blp.response(204)
    def delete(self, key):
        """Delete a class without CIs, subclasses or references to it (admins)."""
        classes.delete_class(actor(), key)


@blp.route("/cmdb/relation-types")
@blp.response(200, RelationTypeSchema(many=True))
def relation_types():
    """The relation types, their inverse names and which end depends on which."""
    from cmdb.access import check_read

    check_read(actor())
    return [{"key": t.key, "name": _(t.name), "inverse": _(t.inverse),
             "source_depends": t.source_depends} for t in RELATION_TYPES.values()]


# --- configuration items -------------------------------------------------------------


@blp.route("/cmdb/cis")
class CIs(MethodView):
    @blp.arguments(CIQuerySchema, location="query", unknown=RAISE, error_status_code=400)
    @blp.response(200, CIPageSchema)
    def get(self, args):
        """CIs by name, filtered by class (with subclasses), status, owner group, name,
        external key and attributes (``attr=name:value``, with ``class``); keyset paging."""
        cursor = args.pop("cursor", None)
        limit = args.pop("limit")
        items, next_cursor = service.list_cis(actor(), args, cursor, limit)
        return {"items": items, "next_cursor": next_cursor}

    @blp.arguments(CICreateSchema)
    @blp.response(201, CISchema)
    def post(self, data):
        """Create a CI (managers, admins), validated against its class."""
        return service.create_ci(actor(), data)


@blp.route("/cmdb/cis/<int:ci_id>")
class CIDetail(MethodView):
    @blp.response(200, CISchema)
    def get(self, ci_id):
        """One CI."""
        return service.get_ci(actor(), ci_id)

    @blp.arguments(CIUpdateSchema)
    @blp.response(200, CISchema)
    def patch(self, data, ci_id):
        """Change fields (managers, admins); ``attributes`` merge (null removes);
        ``version`` must be the one you read, else 409."""
        return service.update_ci(actor(), ci_id, data)


@blp.route("/cmdb/cis/<int:ci_id>/history")
@blp.response(200, CIHistorySchema(many=True))
def ci_history(ci_id):
    """Every change to the CI and its relations, oldest first."""
    return service.list_history(actor(), ci_id)


@blp.route("/cmdb/cis/<int:ci_id>/relations")
@blp.response(200, CIRelationsSchema)
def ci_relations(ci_id):
    """Its relations: outgoing (it *type* target) and incoming (source *type* it)."""
    outgoing, incoming = service.list_relations(actor(), ci_id)
    return {"outgoing": [present_relation(r) for r in outgoing],
            "incoming": [present_relation(r) for r in incoming]}


@blp.route("/cmdb/cis/<int:ci_id>/impact")
@blp.arguments(ImpactQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, ImpactSchema)
def ci_impact(args, ci_id):
    """What fails with it (``downstream``: the services and open tickets affected) or
    what it needs (``upstream``), to ``depth`` hops, each CI with a shortest path."""
    who = actor()
    ci = service.get_ci(who, ci_id)
    result = impacts.impact(who, ci, args["direction"], args["depth"])
    return impact_body(who, ci, result)


@blp.route("/cmdb/cis/<int:ci_id>/tickets")
@blp.arguments(TicketQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, TicketBriefSchema(many=True))
def ci_tickets(args, ci_id):
    """Open tickets you may see that name this CI as affected, most urgent first."""
    who = actor()
    ci = service.get_ci(who, ci_id)
    return impacts.open_tickets(who, [ci.id], args["limit"])


@blp.route("/cmdb/cis/<int:ci_id>/graph.svg")
@blp.response(200, content_type="image/svg+xml")
def ci_graph(ci_id):
    """Its neighbourhood (two hops both ways) as an SVG picture."""
    who = actor()
    ci = service.get_ci(who, ci_id)
    return Response(render_graph(who, ci), mimetype="image/svg+xml")


def render_graph(who, ci) -> str:
    hood = impacts.neighbourhood(who, ci)
    catalog = classes.Catalog.load()
    names = {row.id: row.name for row in catalog.by_id.values()}
    return graph.render(hood, names, catalog.service_class_ids(), ci_url)


# --- relations -----------------------------------------------------------------------


@blp.route("/cmdb/relations", methods=["POST"])
@blp.arguments(RelationCreateSchema)
@blp.response(201, RelationSchema)
def create_relation(data):
    """Relate two CIs (managers, admins): ``source`` *type* ``target``, by id or
    external key. The same relation twice is a 409."""
    return present_relation(service.create_relation(actor(), data))


@blp.route("/cmdb/relations/<int:relation_id>", methods=["DELETE"])
@blp.response(204)
def delete_relation(relation_id):
    """Remove a relation (managers, admins); recorded in both CIs' history."""
    service.delete_relation(actor(), relation_id)


# --- import --------------------------------------------------------------------------


@blp.route("/cmdb/import", methods=["POST"])
@blp.arguments(ImportQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.arguments(ImportSchema)
@blp.response(200, ImportReportSchema)
def import_cis(args, data):
    """Import CIs and relations (managers, admins): the JSON of ``servicedesk cmdb
    import``, or ``{"csv": text}``; idempotent by external key; all rows or none (the
    error names each bad row and field); ``dry_run=true`` checks without writing."""
    return importer.run_import(actor(), data, dry_run=args["dry_run"])
