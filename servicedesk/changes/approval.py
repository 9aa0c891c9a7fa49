"""Change authorization through the generic approvals (``servicedesk.approvals``).

Moving a change to authorization asks for the approval its route names (by risk level,
or the emergency CAB for an emergency change; ``changes.risk``); the approvals package
calls ``on_decision`` in the transaction that settles it, which schedules or rejects
the change. The change's requester can never approve it (the approvals package refuses
a requester's own decision).
"""

from __future__ import annotations

from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from servicedesk.changes.risk import GROUP_MANAGER, route_for
from servicedesk.errors import Conflict, Forbidden
from servicedesk.extensions import db
from servicedesk.identity.models import Group, User

# How long an approval may stay pending before it escalates (the approvals' SLA clock).
DUE_IN = {"low": timedelta(days=3), "medium": timedelta(days=3), "high": timedelta(days=5),
          "emergency": timedelta(hours=4)}


def approvers(change) -> dict:
    """The users, groups, rule and quorum of the change's route, resolved."""
    route = route_for(change)

    def may_approve(user) -> bool:  # never the change's own requester (four eyes)
        return user is not None and user.active and user.id != change.requester_id

    users = []
    for name in route.get("users", []):
        if name == GROUP_MANAGER:
            user = change.group.manager if change.group is not None else None
        else:
            user = db.session.scalars(select(User).where(User.username == name)).one_or_none()
        if may_approve(user) and user not in users:
            users.append(user)
    groups = [group for group in db.session.scalars(
        select(Group).where(Group.name.in_(route.get("groups", []))).order_by(Group.name))
        if any(may_approve(member) for member in group.members)]
    quorum = route.get("quorum") if route["rule"] == "quorum" else None
    if quorum is not None:
        # "CAB, quorum 2" means two members of the CAB: under a quorum rule a group
        # stands for its members, each a slot of their own (a group slot would be filled
        # by its first member alone).
        seen = {u.id for u in users}
        for group in groups:
            for member in sorted(group.members, key=lambda u: u.username):
                if may_approve(member) and member.id not in seen:
                    users.append(member)
                    seen.add(member.id)
        groups = []
        if len(users) < quorum:
            raise Conflict(
                _("%(number)s needs %(quorum)s approvers, but its route names only %(n)s "
                  "who may approve it. Ask an admin to fix the risk model's routes.",
                  number=change.number, quorum=quorum, n=len(users)),
                fields={"to": [_("Not enough approvers for this change.")]},
                code="no_approver")
    if not users and not groups:
        raise Conflict(
            _("Nobody can approve %(number)s: its route names %(names)s, and none of them "
              "may (a group without a manager or members, a missing group, or only the "
              "change's own requester). Ask an admin to fix the risk model's routes.",
              number=change.number,
              names=", ".join(route.get("users", []) + route.get("groups", [])) or "-"),
            fields={"to": [_("No approver for this change.")]}, code="no_approver")
    key = "emergency" if change.change_type == "emergency" else change.risk_level
    due = (timedelta(hours=route["due_hours"]) if route.get("due_hours") else DUE_IN[key])
    return {"users": users, "groups": groups, "rule": route["rule"], "quorum": quorum,
            "due_in": due}


def request(change, actor: User, who: dict | None = None) -> None:
    """Ask for the change's approval (no commit: the transition's transaction)."""
    from servicedesk.approvals import service as approvals

    who = who or approvers(change)
    key = "emergency" if change.change_type == "emergency" else change.risk_level
    label = (_("Emergency CAB authorization") if key == "emergency"
             else _("Change authorization (%(risk)s risk)", risk=change.risk_level))
    approvals.request_approval(change, actor, users=who["users"], groups=who["groups"],
                               rule=who["rule"], quorum=who["quorum"], label=label,
                               due_in=who["due_in"])


def cancel(change, actor: User, reason: str) -> None:
    """The change left authorization without a decision (cancelled): withdraw the ask."""
    from servicedesk.approvals import service as approvals

    approvals.cancel_pending(change, actor, reason)


def on_decision(ticket, approval_row, actor):
    """The approvals' decision handler for changes (registered by ``register``)."""
    from servicedesk.changes.service import decide

    return decide(ticket, approval_row.status == "approved")


def register() -> None:
    from flask import url_for

    from servicedesk.approvals import service as approvals

    approvals.register_decision_handler("change", on_decision)
    # The inbox links a change's approval to the change page.
    approvals.register_ticket_url("change", lambda number: url_for("changes.page",
                                                                   number=number))


def approvals_of(actor: User, change) -> list[dict]:
    from servicedesk.approvals import service as approvals

    return [approvals.to_dict(a, actor) for a in approvals.approvals_for_ticket(change)]


def decide_on(actor: User, change, data: dict):
    """``actor``'s decision on the change's pending approval (the latest, or the one
    named by ``approval_id``)."""
    from servicedesk.approvals import service as approvals
    from servicedesk.approvals.models import Approval

    approval_id = data.get("approval_id")
    if approval_id is None:
        pending = [a for a in approvals.approvals_for_ticket(change) if a.status == "pending"]
        if not pending:
            raise Conflict(_("%(number)s has no pending approval.", number=change.number),
                           code="approval_closed")
        approval_id = pending[-1].id
    elif approval_id not in {a.id for a in approvals.approvals_for_ticket(change)}:
        from servicedesk.errors import NotFound

        raise NotFound(_("No approval %(id)s on %(number)s.", id=approval_id,
                         number=change.number))
    if not approvals.may_see(actor, db.session.get(Approval, approval_id)):
        # Every member of staff sees every change; the approvals package answers 404
        # to whoever may not see the ticket by its queues, here a plain "not yours".
        raise Forbidden(_("You are not an approver of this approval."), code="not_approver")
    return approvals.decide(actor, approval_id, data["decision"], data.get("comment"),
                            data.get("version"))
