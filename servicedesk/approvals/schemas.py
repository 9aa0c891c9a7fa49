"""marshmallow schemas of approvals: what ``service.to_dict`` gives, and the decision body."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicedesk.approvals.models import DECISIONS, STATUSES
from servicedesk.tickets.schemas import Version


class ApprovalTicketSchema(ma.Schema):
    number = fields.String()
    title = fields.String()
    kind = fields.String()
    status = fields.String()


class ApproverSchema(ma.Schema):
    user = fields.String(allow_none=True, metadata={"description": "A named user, or"})
    group = fields.String(allow_none=True, metadata={"description": "a group (one member fills it)"})
    name = fields.String()
    decision = fields.String(allow_none=True, metadata={"description": "approve, reject or null"})
    decided_by = fields.String(allow_none=True)


class DecisionSchema(ma.Schema):
    user = fields.String()
    user_name = fields.String()
    decision = fields.String()
    comment = fields.String(allow_none=True)
    at = fields.DateTime()


class ApprovalSchema(ma.Schema):
    """One approval (``servicedesk.approvals.service.to_dict``)."""

    id = fields.Integer()
    ticket = fields.Nested(ApprovalTicketSchema)
    label = fields.String()
    rule = fields.String(metadata={"description": "any, all or quorum"})
    quorum = fields.Integer(allow_none=True)
    status = fields.String(metadata={"description": ", ".join(STATUSES)})
    requested_by = fields.String(allow_none=True)
    requested_at = fields.DateTime()
    due_at = fields.DateTime(allow_none=True)
    overdue = fields.Boolean()
    escalated_at = fields.DateTime(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    approvers = fields.List(fields.Nested(ApproverSchema))
    decisions = fields.List(fields.Nested(DecisionSchema))
    can_decide = fields.Boolean(metadata={"description": "Whether you may decide it now"})


class ApprovalQuerySchema(ma.Schema):
    status = fields.String(load_default="pending", validate=validate.OneOf(STATUSES))


class DecisionCreateSchema(ma.Schema):
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=5000))
    version = Version(load_default=None, allow_none=True)
