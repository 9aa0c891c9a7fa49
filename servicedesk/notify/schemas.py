"""marshmallow schemas of the notification admin API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicedesk.notify.models import STATUSES
from servicedesk.tickets.schemas import MAX_ID


class NotificationQuerySchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    after = fields.Integer(validate=validate.Range(min=1, max=MAX_ID),
                           metadata={"description": "Return rows older than this id "
                                                    "(the previous page's `next_after`)."})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class NotificationSchema(ma.Schema):
    id = fields.Integer()
    event = fields.String()
    backend = fields.String()
    status = fields.String(metadata={"description": "pending, sent or failed"})
    address = fields.String()
    subject = fields.String()
    dedupe_key = fields.String()
    ticket = fields.Function(lambda n: n.ticket.number if n.ticket is not None else None)
    recipient = fields.Function(lambda n: n.recipient.username if n.recipient else None)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    deliver_after = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class NotificationPageSchema(ma.Schema):
    items = fields.List(fields.Nested(NotificationSchema))
    next_after = fields.Integer(allow_none=True)
