"""Delivery jobs (RQ with Redis, in-process without): ids in, services called.

``deliver`` is enqueued after the commit that wrote a notification (job id
``notify-<id>``); ``deliver_due`` is the periodic sweep ("deliver-notifications",
every 60 s) that delivers whatever is due, including retries and rows whose job was
lost (a flushed Redis, a worker killed mid-send), so nothing queued is ever lost.
"""

from __future__ import annotations

from servicedesk.notify import delivery


def deliver(notification_id: int) -> str | None:
    """Deliver one notification if it is due; "sent", "retry", "failed" or None."""
    return delivery.deliver_one(int(notification_id))


def deliver_due() -> dict[str, int]:
    """Deliver what is due now (bounded batch); counts by outcome."""
    return delivery.deliver_due()
