"""REST endpoints for incidents: thin; each parses, calls one service function, dumps."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from marshmallow import RAISE

from servicedesk import cmdb_links
from servicedesk.api import actor, api_blueprint
from servicedesk.incidents import service
from servicedesk.incidents.listing import list_incident_items
from servicedesk.incidents.schemas import (
    EscalateSchema,
    IncidentCreateSchema,
    IncidentImpactSchema,
    IncidentPageSchema,
    IncidentQuerySchema,
    IncidentSchema,
    IncidentUpdateSchema,
    IncidentWithImpactSchema,
    TransitionSchema,
)
from servicedesk.incidents.workflow import INCIDENT_WORKFLOW
from servicedesk.sla.ola import ola_summary
from servicedesk.tickets import service as core
from servicedesk.tickets.schemas import AuditEntrySchema, CommentCreateSchema, CommentSchema

blp = api_blueprint("api_incidents", __name__, "Incidents: report, work and resolve disruptions.")


def _present(incident):
    incident.allowed_transitions = INCIDENT_WORKFLOW.allowed(incident.status, actor().role)
    incident.ola = ola_summary(actor(), incident)
    return incident


@blp.route("/incidents")
class Incidents(MethodView):
    @blp.arguments(IncidentQuerySchema, location="query", unknown=RAISE, error_status_code=400)
    @blp.response(200, IncidentPageSchema)
    def get(self, args):
        """List the incidents you may see, filtered and sorted, with keyset paging."""
        sort = args.pop("sort")
        cursor = args.pop("cursor", None)
        limit = args.pop("limit")
        items, next_cursor = list_incident_items(actor(), args, sort, cursor, limit)
        # The items are IncidentSchema's dump already (see incidents.listing): returned
        # as a Response, which flask-smorest passes through, so they are not dumped a
        # second time; the decorator above still documents the page.
        return current_app.json.response({"items": items, "next_cursor": next_cursor})

    @blp.arguments(IncidentCreateSchema)
    @blp.response(201, IncidentWithImpactSchema)
    def post(self, data):
        """Raise an incident (requesters for themselves; staff also for others)."""
        return _present(service.create_incident(actor(), data, channel="api"))


@blp.route("/incidents/<string:number>")
class IncidentDetail(MethodView):
    @blp.response(200, IncidentSchema)
    def get(self, number):
        """One incident."""
        return _present(service.get_incident(actor(), number))

    @blp.arguments(IncidentUpdateSchema)
    @blp.response(200, IncidentWithImpactSchema)
    def patch(self, data, number):
        """Change fields; ``version`` must be the one you read, else 409."""
        return _present(service.update_incident(actor(), number, data))


@blp.route("/incidents/<string:number>/impact")
@blp.response(200, IncidentImpactSchema)
def impact(number):
    """Its affected CIs and the services (business first) that need them."""
    incident = service.get_incident(actor(), number)
    return {"affected_cis": cmdb_links.affected_cis(incident),
            "impacted_services": cmdb_links.impacted_services(incident)}


@blp.route("/incidents/<string:number>/transition", methods=["POST"])
@blp.arguments(TransitionSchema)
@blp.response(200, IncidentSchema)
def transition(data, number):
    """Move along the workflow (``{"to": ...}`` plus the fields that step requires)."""
    return _present(service.transition_incident(actor(), number, data))


@blp.route("/incidents/<string:number>/escalate", methods=["POST"])
@blp.arguments(EscalateSchema)
@blp.response(200, IncidentSchema)
def escalate(data, number):
    """Functional escalation to a group of the next support line."""
    return _present(service.escalate_incident(actor(), number, data))


@blp.route("/incidents/<string:number>/comments")
class IncidentComments(MethodView):
    @blp.response(200, CommentSchema(many=True))
    def get(self, number):
        """Public replies (and, for staff, internal notes), oldest first."""
        return core.list_comments(service.get_incident(actor(), number), actor())

    @blp.arguments(CommentCreateSchema)
    @blp.response(201, CommentSchema)
    def post(self, data, number):
        """Reply publicly or (staff) add an internal note."""
        return service.comment_incident(actor(), number, data["body"], data["public"])


@blp.route("/incidents/<string:number>/history")
@blp.response(200, AuditEntrySchema(many=True))
def history(number):
    """Every change: who, when, field, old value, new value."""
    return core.list_history(service.get_incident(actor(), number), actor())
