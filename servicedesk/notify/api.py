"""Admin REST endpoints of the outbox: list deliveries (failed ones first of all) and
retry one. Thin: each parses, calls one service function, dumps."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.notify import service
from servicedesk.notify.schemas import (
    NotificationPageSchema,
    NotificationQuerySchema,
    NotificationSchema,
)
from servicedesk.tickets.schemas import MAX_ID

blp = api_blueprint("api_notifications", __name__,
                    "Notification outbox: deliveries, failures, retries (admins).")


@blp.route("/admin/notifications")
class Notifications(MethodView):
    @blp.arguments(NotificationQuerySchema, location="query", unknown=RAISE,
                   error_status_code=400)
    @blp.response(200, NotificationPageSchema)
    def get(self, args):
        """Notifications newest first, optionally of one ``status`` (admins). Page on with
        ``after`` = the previous page's ``next_after``."""
        limit = args["limit"]
        items = service.list_notifications(actor(), args.get("status"),
                                           after_id=args.get("after"), limit=limit)
        return {"items": items,
                "next_after": items[-1].id if len(items) == limit else None}


@blp.route("/admin/notifications/<int:notification_id>/retry")
class NotificationRetry(MethodView):
    @blp.response(200, NotificationSchema)
    def post(self, notification_id):
        """Deliver a failed notification again, with a fresh count of attempts (admins)."""
        # Ids beyond the 32-bit column match nothing (and PostgreSQL would refuse them).
        return service.retry_notification(
            actor(), notification_id if notification_id <= MAX_ID else 0)
