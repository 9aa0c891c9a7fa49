"""Where service requests meet the generic approvals package (servicedesk.approvals).

The offering's rule decides who approves: ``manager`` — the requester's line manager
(``users.manager_id``), or, when they have none, the manager of the service's owner
group; ``group`` — any one member of the offering's approval group. The approvals
package tells us the outcome through the decision handler registered for the kind
``request``; we move the request to approved (into the fulfilment group's queue) or
to rejected (with the approver's comment as the reason; the requester is notified).
Nothing else in servicedesk.requests imports servicedesk.approvals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from servicedesk.approvals import service as approvals
from servicedesk.catalogue.models import Offering
from servicedesk.errors import ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import Group, User


@dataclass(frozen=True)
class Approvers:
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()


def approvers_for(offering: Offering, requester: User) -> Approvers | None:
    """Who must approve a request of ``offering`` by ``requester``; None: no approval.
    A 422 naming ``offering_id`` when the rule finds nobody (nothing is created)."""
    if offering.approval_rule == "none":
        return None
    if offering.approval_rule == "manager":
        manager = requester.manager if requester.manager_id else None
        if manager is None or not manager.active:
            owner = offering.service.owner_group
            manager = owner.manager if owner is not None else None
        if manager is None or not manager.active or manager.id == requester.id:
            raise ValidationError(
                _("%(offering)s needs your manager's approval, and no manager is known "
                  "for you; please contact the service desk.", offering=offering.name),
                fields={"offering_id": [_("No manager to approve it.")]})
        return Approvers(users=(manager,))
    group = offering.approval_group
    if group is None:
        raise ValidationError(_("%(offering)s has no approval group; please contact the "
                                "service desk.", offering=offering.name),
                              fields={"offering_id": [_("No group to approve it.")]})
    return Approvers(groups=(group,))


def approval_deadline() -> timedelta | None:
    """How long approvers have before the approvals package reminds their managers:
    ``SERVICEDESK_REQUEST_APPROVAL_DAYS`` (default 3; 0 or empty: no deadline)."""
    days = current_app.config.get("SERVICEDESK_REQUEST_APPROVAL_DAYS", 3)
    return timedelta(days=days) if days else None


def ask(request, actor: User | None, offering: Offering, approvers: Approvers) -> None:
    """Ask the approvers, in the caller's transaction. The approvals package's refusal
    (e.g. a group without an active member who may approve) names ``offering_id``: that
    is what the employee chose."""
    label = (_("Manager approval") if approvers.users
             else _("Approval by %(group)s", group=approvers.groups[0].name))
    try:
        approvals.request_approval(request, actor, users=approvers.users,
                                   groups=approvers.groups, rule="any", label=label[:120],
                                   due_in=approval_deadline())
    except ValidationError as exc:
        raise ValidationError(exc.message, fields={
            "offering_id": [r for reasons in exc.fields.values() for r in reasons]
            or [_("Nobody can approve it.")]}) from None


def withdraw(request, actor: User | None) -> None:
    """The request was withdrawn: its pending approval is cancelled (same transaction)."""
    approvals.cancel_pending(request, actor, reason="withdrawn")


def visible_to_approver(actor: User, number: str):
    """The request ``number`` if ``actor`` is (or was) asked to approve it, else None."""
    from servicedesk.requests.models import ServiceRequest

    request = db.session.scalars(
        select(ServiceRequest).where(ServiceRequest.number == number)).one_or_none()
    if request is None or actor is None or not actor.active:
        return None
    for item in approvals.approvals_for_ticket(request):
        if approvals.may_see(actor, item):
            return request
    return None


def panel(request, actor: User) -> list[dict]:
    """The request's approvals as the approvals panel shows them (may be empty)."""
    return [approvals.to_dict(a, actor) for a in approvals.approvals_for_ticket(request)]


def _on_decision(ticket, approval, actor):
    """An approval of a request became final: approved → the fulfilment queue;
    rejected → rejected, the reject comment as the reason."""
    from servicedesk.requests import service

    if ticket.status != "awaiting_approval":
        return None
    hooks: list = []
    if approval.status == "approved":
        if any(a.status == "pending" for a in approvals.approvals_for_ticket(ticket)
               if a.id != approval.id):
            return None  # another approval is still open
        service.start_fulfilment(ticket, actor, hooks)
    elif approval.status == "rejected":
        reasons = [d.comment for d in approval.decisions if d.decision == "reject" and d.comment]
        service.reject(ticket, actor, reasons[-1] if reasons else "", hooks)
    return hooks


approvals.register_decision_handler("request", _on_decision)
approvals.register_ticket_url("request", lambda number: url_for("requests.request_page",
                                                                number=number))
