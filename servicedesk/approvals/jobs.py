"""Background work of approvals (``PERIODIC_JOBS["approvals-escalate"]``)."""

from __future__ import annotations

from servicedesk.approvals import escalation


def escalate_overdue() -> int:
    """Escalate each pending approval past its due instant, once. Idempotent: any number
    of runs at once escalate each approval once. How many were escalated."""
    return escalation.escalate_overdue()
