"""marshmallow schemas of the attachment and inbound-message endpoints."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicedesk.attachments.models import INBOUND_STATUSES
from servicedesk.tickets.schemas import MAX_ID


class AttachmentSchema(ma.Schema):
    id = fields.Integer()
    filename = fields.String(metadata={"description": "A label (sanitised), never a path."})
    content_type = fields.String()
    size = fields.Integer(metadata={"description": "Bytes."})
    sha256 = fields.String()
    comment_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    download = fields.Function(lambda a: f"/api/v1/attachments/{a.id}",
                               metadata={"description": "Always served as a download."})


class InboundQuerySchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(INBOUND_STATUSES))
    after = fields.Integer(validate=validate.Range(min=1, max=MAX_ID),
                           metadata={"description": "Return rows older than this id "
                                                    "(the previous page's `next_after`)."})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class InboundMessageSchema(ma.Schema):
    id = fields.Integer()
    channel = fields.String()
    message_id = fields.String()
    received_at = fields.DateTime()
    sender = fields.String()
    subject = fields.String()
    status = fields.String(metadata={"description": "processed, ignored, rejected or failed"})
    reason = fields.String()
    ticket = fields.Function(lambda m: m.ticket.number if m.ticket is not None else None)


class InboundPageSchema(ma.Schema):
    items = fields.List(fields.Nested(InboundMessageSchema))
    next_after = fields.Integer(allow_none=True)
