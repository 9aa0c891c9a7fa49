"""REST endpoints for service requests: thin; each parses, calls one service function, dumps."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.requests import service
from servicedesk.requests.schemas import (
    RequestCreateSchema,
    RequestPageSchema,
    RequestQuerySchema,
    RequestSchema,
    RequestTransitionSchema,
    RequestUpdateSchema,
)
from servicedesk.requests.workflow import REQUEST_WORKFLOW
from servicedesk.tickets import service as core
from servicedesk.tickets.schemas import AuditEntrySchema, CommentCreateSchema, CommentSchema

blp = api_blueprint("api_requests", __name__,
                    "Service requests: catalogue offerings asked for, approved and fulfilled.")


def _present(request):
    request.allowed_transitions = REQUEST_WORKFLOW.allowed(request.status, actor().role)
    return request


@blp.route("/requests")
class Requests(MethodView):
    @blp.arguments(RequestQuerySchema, location="query", unknown=RAISE, error_status_code=400)
    @blp.response(200, RequestPageSchema)
    def get(self, args):
        """List the requests you may see, filtered and sorted, with keyset paging."""
        sort = args.pop("sort")
        cursor = args.pop("cursor", None)
        limit = args.pop("limit")
        items, next_cursor = service.list_requests(actor(), args, sort, cursor, limit)
        return {"items": [_present(i) for i in items], "next_cursor": next_cursor}

    @blp.arguments(RequestCreateSchema)
    @blp.response(201, RequestSchema)
    def post(self, data):
        """Request a catalogue offering with the answers to its form."""
        return _present(service.create_request(actor(), data, channel="api"))


@blp.route("/requests/<string:number>")
class RequestDetail(MethodView):
    @blp.response(200, RequestSchema)
    def get(self, number):
        """One request."""
        return _present(service.get_request(actor(), number))

    @blp.arguments(RequestUpdateSchema)
    @blp.response(200, RequestSchema)
    def patch(self, data, number):
        """Change fields (IT staff); ``version`` must be the one you read, else 409."""
        return _present(service.update_request(actor(), number, data))


@blp.route("/requests/<string:number>/transition", methods=["POST"])
@blp.arguments(RequestTransitionSchema)
@blp.response(200, RequestSchema)
def transition(data, number):
    """Move along the workflow (``{"to": ...}`` plus the fields that step requires)."""
    return _present(service.transition_request(actor(), number, data))


@blp.route("/requests/<string:number>/comments")
class RequestComments(MethodView):
    @blp.response(200, CommentSchema(many=True))
    def get(self, number):
        """Public replies (and, for staff, internal notes), oldest first."""
        return core.list_comments(service.get_request(actor(), number), actor())

    @blp.arguments(CommentCreateSchema)
    @blp.response(201, CommentSchema)
    def post(self, data, number):
        """Reply publicly or (staff) add an internal note."""
        return service.comment_request(actor(), number, data["body"], data["public"])


@blp.route("/requests/<string:number>/history")
@blp.response(200, AuditEntrySchema(many=True))
def history(number):
    """Every change: who, when, field, old value, new value."""
    return core.list_history(service.get_request(actor(), number), actor())
