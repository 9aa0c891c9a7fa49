"""REST endpoints: a ticket's attachments, their download, and the inbound message log.

Thin: each parses, calls one service function, dumps. A download is the same response
as the pages' (``views.download_response``): always an attachment, never sniffed,
sandboxed.
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.attachments import service
from servicedesk.attachments.schemas import (
    AttachmentSchema,
    InboundPageSchema,
    InboundQuerySchema,
)
from servicedesk.attachments.views import download_response

blp = api_blueprint("api_attachments", __name__,
                    "Attachments of tickets, and the log of inbound messages.")


@blp.route("/tickets/<string:number>/attachments")
@blp.response(200, AttachmentSchema(many=True))
def ticket_attachments(number):
    """The files kept with a ticket you may see (those of internal notes: staff only)."""
    return service.list_ticket_attachments(actor(), number)


@blp.route("/attachments/<int:attachment_id>")
@blp.response(200, description="The file, as a download.")
def download(attachment_id):
    """Download one attachment of a ticket you may see."""
    return download_response(service.get_attachment(actor(), attachment_id))


@blp.route("/admin/inbound-messages")
class InboundMessages(MethodView):
    @blp.arguments(InboundQuerySchema, location="query", unknown=RAISE,
                   error_status_code=400)
    @blp.response(200, InboundPageSchema)
    def get(self, args):
        """Messages the inbound channels received, newest first, optionally of one
        ``status`` (admins). Page on with ``after`` = the previous page's ``next_after``."""
        limit = args["limit"]
        items = service.list_inbound_messages(actor(), args.get("status"),
                                              after_id=args.get("after"), limit=limit)
        return {"items": items, "next_after": items[-1].id if len(items) == limit else None}
