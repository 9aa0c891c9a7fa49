"""REST endpoints of approvals: thin; each parses, calls one service function, dumps."""

from __future__ import annotations

from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.approvals import service
from servicedesk.approvals.schemas import (
    ApprovalQuerySchema,
    ApprovalSchema,
    DecisionCreateSchema,
)

blp = api_blueprint("api_approvals", __name__,
                    "Approvals on tickets of any kind: your inbox and your decisions.")


@blp.route("/approvals")
@blp.arguments(ApprovalQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, ApprovalSchema(many=True))
def inbox(args):
    """``pending`` (default): the approvals you may decide now, oldest first. Another
    status: approvals of that status naming you (or your groups), newest first."""
    me = actor()
    return [service.to_dict(a, me) for a in service.list_for(me, args["status"])]


@blp.route("/approvals/<int:approval_id>")
@blp.response(200, ApprovalSchema)
def detail(approval_id):
    """One approval, for its approvers and whoever may see its ticket."""
    return service.to_dict(service.get_approval(actor(), approval_id), actor())


@blp.route("/approvals/<int:approval_id>/decision", methods=["POST"])
@blp.arguments(DecisionCreateSchema)
@blp.response(200, ApprovalSchema)
def decide(data, approval_id):
    """Approve or reject (a rejection needs a ``comment``); ``version`` optional."""
    approval = service.decide(actor(), approval_id, data["decision"], data.get("comment"),
                              data.get("version"))
    return service.to_dict(approval, actor())


@blp.route("/tickets/<string:number>/approvals")
@blp.response(200, ApprovalSchema(many=True))
def ticket_approvals(number):
    """A ticket's approvals and decisions (a ticket of any kind that you may see)."""
    _ticket, approvals = service.ticket_approvals(actor(), number)
    return [service.to_dict(a, actor()) for a in approvals]
