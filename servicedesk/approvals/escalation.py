"""Overdue approvals: each pending approval past its ``due_at`` is escalated once.

Escalating tells the approvers' managers (a named user's ``manager``, a group's
``manager``; if nobody is known, whoever asked for the approval), audits
``approval_escalated`` on the ticket and sets ``escalated_at``: all in one transaction.
The claim is one conditional UPDATE (``escalated_at IS NULL``): however many sweeps
race (several schedulers, RQ and in-process), exactly one escalates each approval,
and one that crashes before its commit leaves it for the next sweep. ``escalated_at``
is written without bumping the approval's version: an approver's open form stays
valid.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from servicedesk.approvals.models import Approval
from servicedesk.approvals.service import _notify
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.tickets import service as core
from servicedesk.types import utcnow

BATCH = 200


def overdue_ids(now: datetime, limit: int = BATCH) -> list[int]:
    """Pending, unescalated approvals due by ``now`` (ix_approvals_overdue), earliest first."""
    return list(db.session.scalars(
        select(Approval.id).where(Approval.status == "pending", Approval.escalated_at.is_(None),
                                  Approval.due_at <= now)
        .order_by(Approval.due_at, Approval.id).limit(limit)))


def managers_of(approval: Approval) -> list[User]:
    """Who hears of an overdue approval: the approvers' managers, else the asker."""
    found: dict[int, User] = {}
    for slot in approval.approvers:
        manager = slot.user.manager if slot.user is not None else slot.group.manager
        if manager is not None and manager.active:
            found.setdefault(manager.id, manager)
    if not found and approval.requested_by is not None and approval.requested_by.active:
        found[approval.requested_by.id] = approval.requested_by
    return list(found.values())


def escalate_one(approval_id: int, now: datetime | None = None) -> bool:
    """Escalate one approval if it is still pending, overdue and unescalated; commits.
    Whether this call escalated it."""
    now = now or utcnow()
    table = Approval.__table__
    claimed = db.session.execute(
        update(table).where(table.c.id == approval_id, table.c.status == "pending",
                            table.c.escalated_at.is_(None), table.c.due_at <= now)
        .values(escalated_at=now)).rowcount
    if claimed != 1:
        db.session.rollback()
        return False
    approval = db.session.get(Approval, approval_id)
    set_committed_value(approval, "escalated_at", now)
    core.record(approval.ticket, None, "approval_escalated", "approval", None,
                f"{approval.label} (#{approval.id})", at=now)
    for manager in managers_of(approval):
        _notify("approval_overdue", manager, approval, None,
                f"approval-{approval.id}-overdue-{manager.id}")
    db.session.commit()
    return True


def escalate_overdue(now: datetime | None = None, limit: int = BATCH) -> int:
    """Escalate every overdue approval (up to ``limit`` per run); how many escalated."""
    now = now or utcnow()
    ids = overdue_ids(now, limit)
    db.session.rollback()  # end the read; each escalation is its own transaction
    return sum(escalate_one(approval_id, now) for approval_id in ids)
