"""Service-request operations. Each takes the acting user, checks, changes, audits,
commits (through the core's commit_and_notify, which keeps the SLA clocks), hooks."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from servicedesk import cmdb_links
from servicedesk.catalogue.formdef import validate_answers
from servicedesk.catalogue.service import requestable_offering
from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.i18n import N_
from servicedesk.identity.models import User
from servicedesk.requests import approval
from servicedesk.requests.models import PREFIX, ServiceRequest
from servicedesk.requests.workflow import REQUEST_WORKFLOW
from servicedesk.sla.models import SlaPolicy
from servicedesk.tickets import service as core
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.paging import (
    after_cursor,
    cut_page,
    decode_cursor,
    keyset_columns,
    order_by,
    to_utc,
)
from servicedesk.types import utcnow

WORKFLOW = REQUEST_WORKFLOW

_ASKED = {"offering_id", "answers", "title", "description"}
_STAFF = {"title", "description", "group", "assignee", "affected_cis"}
CREATE_FIELDS = {"requester": _ASKED, "agent": _ASKED | {"requester"},
                 "manager": _ASKED | {"requester"}, "admin": _ASKED | {"requester"}}
UPDATE_FIELDS = {"agent": _STAFF, "manager": _STAFF, "admin": _STAFF}


WHY_NOT = {
    "requester": N_("Only IT staff raise requests for someone else."),
    "group": N_("Only IT staff assign requests."),
    "assignee": N_("Only IT staff assign requests."),
    "title": N_("Add a reply to tell IT what changed."),
    "description": N_("Add a reply to tell IT what changed."),
    "affected_cis": N_("Only IT staff link configuration items."),
}


# --- reading -------------------------------------------------------------------------


def get_request(actor: User, number: str) -> ServiceRequest:
    """The request if ``actor`` may see it (the access rules, or asked to approve it)."""
    try:
        return core.get_visible_ticket(actor, ServiceRequest, number)
    except NotFound:
        request = approval.visible_to_approver(actor, number)
        if request is None:
            raise
        return request


_LIST_OPTIONS = (
    joinedload(ServiceRequest.requester),
    joinedload(ServiceRequest.assignee),
    joinedload(ServiceRequest.group),
    joinedload(ServiceRequest.offering),
    joinedload(ServiceRequest.sla_policy).joinedload(SlaPolicy.calendar),
    joinedload(ServiceRequest.response_clock),
    joinedload(ServiceRequest.resolution_clock),
)

SORTS = {
    "created_at": ((ServiceRequest.created_at, False),),
    "-created_at": ((ServiceRequest.created_at, True),),
    "-updated_at": ((ServiceRequest.updated_at, True),),
    "priority": ((ServiceRequest.priority, False), (ServiceRequest.created_at, False)),
    "due": ((ServiceRequest.sla_due_rank, False), (ServiceRequest.priority, False),
            (ServiceRequest.created_at, False)),
}
DEFAULT_SORT = "-created_at"


def list_requests(actor: User, filters: dict, sort: str = DEFAULT_SORT,
                  cursor: str | None = None, limit: int = 50):
    """Requests ``actor`` may see, filtered, in ``sort`` order: (items, next_cursor).

    ``filters``: status (list), open, group, assignee (username, "me", "none"),
    requester ("me" or a username), offering_id, service_id, created_after/before.
    """
    columns = keyset_columns(SORTS, sort)
    core.refuse_probing_filters(
        actor, filters,
        _("You see only the requests you raised; these filters are for IT staff."))
    where = [visible_tickets_clause(actor, ServiceRequest),
             *core.list_filters(ServiceRequest, actor, filters)]
    if filters.get("requester"):
        who = filters["requester"]
        user = actor if who in ("me", actor.username) else core.find_user(who, "requester")
        where.append(ServiceRequest.requester_id == user.id)
    if filters.get("offering_id"):
        where.append(ServiceRequest.offering_id == filters["offering_id"])
    if filters.get("service_id"):
        where.append(ServiceRequest.service_id == filters["service_id"])
    if filters.get("created_after"):
        where.append(ServiceRequest.created_at >= to_utc(filters["created_after"], "created_after"))
    if filters.get("created_before"):
        where.append(
            ServiceRequest.created_at < to_utc(filters["created_before"], "created_before"))
    if cursor:
        where.append(after_cursor(columns, decode_cursor(cursor, columns)))
    # The affected CIs come as a JSON column of the same statement: one per page.
    rows = db.session.execute(
        select(ServiceRequest, cmdb_links.affected_cis_column(Ticket.id)).where(*where)
        .options(*_LIST_OPTIONS).order_by(*order_by(columns)).limit(limit + 1)).all()
    return cut_page(cmdb_links.with_affected_cis(rows), columns, limit)


# --- moving along the workflow -------------------------------------------------------


def system_move(request: ServiceRequest, actor: User | None, target: str, hooks: list,
                extra: dict | None = None, at=None) -> None:
    """A move the system makes (the approval rule, an approver's decision), audited
    under ``actor`` (the approver, or the requester who submitted) whatever their role."""
    WORKFLOW.check(request.status, target, core.SYSTEM_ROLE)
    at = at or utcnow()
    source = request.status
    core.apply_changes(request, actor, {"status": target}, action="transition", at=at)
    request.is_open = WORKFLOW.is_open(target)
    core.apply_changes(request, actor, extra or {}, action="transition", at=at)
    hooks.append(("servicedesk_ticket_transitioned",
                  {"ticket": request, "actor": actor, "from_status": source, "to_status": target}))


def start_fulfilment(request: ServiceRequest, actor: User | None, hooks: list, at=None) -> None:
    """Approved (or needing no approval): into the offering's fulfilment group's queue."""
    group = request.offering.fulfilment_group
    extra = {"approval": "approved" if request.approval != "not_required" else "not_required"}
    if group is not None:
        extra.update(group=group, support_line=group.support_line)
    system_move(request, actor, "approved", hooks, extra, at=at)


def reject(request: ServiceRequest, actor: User | None, reason: str, hooks: list, at=None) -> None:
    """Rejected by its approver; the requester hears of it from the approvals package
    (``approval_decided``, with the comment) and sees the reason on the request page."""
    now = at or utcnow()
    system_move(request, actor, "rejected", hooks,
                {"approval": "rejected", "rejection_reason": reason or None, "closed_at": now},
                at=now)


# --- writing -------------------------------------------------------------------------


def create_request(actor: User, data: dict, channel: str) -> ServiceRequest:
    core.check_writable(actor, data.keys(), CREATE_FIELDS, WHY_NOT)
    if not data.get("offering_id"):
        raise ValidationError(_("Which offering are you requesting?"),
                              fields={"offering_id": [_("Missing data for required field.")]})
    offering = requestable_offering(actor, data["offering_id"])
    answers = validate_answers(offering.form or {}, data.get("answers"))
    requester = core.find_user(data["requester"], "requester") if data.get("requester") else actor
    approvers = approval.approvers_for(offering, requester)  # 422 when nobody can approve
    now = utcnow()
    request = ServiceRequest(
        title=(data.get("title") or offering.name)[:200],
        description=data.get("description") or "",
        impact="medium", urgency="medium", priority=core.compute_priority("medium", "medium"),
        service_id=offering.service_id, requester=requester, channel=channel,
        status=WORKFLOW.initial, is_open=True, offering=offering, answers=answers,
        approval="not_required" if approvers is None else "pending",
        created_at=now, updated_at=now,
    )
    request.number = core.allocate_number(PREFIX)
    db.session.add(request)
    db.session.flush()
    cmdb_links.mark_none(request)
    core.record(request, actor, "created", "number", None, request.number, at=now)
    hooks = [("servicedesk_ticket_created", {"ticket": request, "actor": actor})]
    if approvers is None:
        start_fulfilment(request, actor, hooks, at=now)
    else:
        system_move(request, actor, "awaiting_approval", hooks, at=now)
        approval.ask(request, actor, offering, approvers)
    core.commit_and_notify(hooks)
    return request


def _assignment(request: ServiceRequest, data: dict) -> dict:
    changes = {}
    group = request.group
    if "group" in data:
        group = core.find_group(data["group"]) if data["group"] else None
        changes.update(group=group, support_line=group.support_line if group else None)
    assignee = request.assignee
    if "assignee" in data:
        assignee = (core.find_user(data["assignee"], "assignee", staff=True)
                    if data["assignee"] else None)
    elif assignee is not None and group is not None and not core.is_member(assignee, group):
        assignee = None
    if assignee is not None and group is not None and not core.is_member(assignee, group):
        raise ValidationError(
            _("%(username)s is not a member of %(group)s.",
              username=assignee.username, group=group.name),
            fields={"assignee": [_("Must be a member of the group %(group)s.", group=group.name)]})
    changes["assignee"] = assignee
    return changes


def _check_open_for_edits(request: ServiceRequest) -> None:
    if WORKFLOW.is_final(request.status):
        raise Conflict(_("%(number)s is %(status)s; it can no longer be changed.",
                         number=request.number, status=request.status), code="ticket_closed")


def update_request(actor: User, number: str, data: dict) -> ServiceRequest:
    data = dict(data)
    version = data.pop("version", None)
    request = get_request(actor, number)
    core.check_writable(actor, data.keys(), UPDATE_FIELDS, WHY_NOT)
    _check_open_for_edits(request)
    core.check_version(request, version)
    cis = cmdb_links.resolve(data["affected_cis"]) if "affected_cis" in data else None
    changes = {k: data[k] for k in ("title", "description") if k in data}
    if "group" in data or "assignee" in data:
        changes.update(_assignment(request, data))
    entries = core.apply_changes(request, actor, changes)
    if cis is not None:
        entry = cmdb_links.set_affected_cis(request, actor, cis, "updated")
        if entry is not None:
            entries.append(entry)
    hooks = [("servicedesk_ticket_updated",
              {"ticket": request, "actor": actor, "changes": entries})] if entries else []
    core.commit_and_notify(hooks)
    return request


def transition_request(actor: User, number: str, data: dict) -> ServiceRequest:
    request = get_request(actor, number)
    if not actor.is_staff and request.requester_id != actor.id:
        # An approver sees the request, but decides in the approvals inbox.
        raise Forbidden(_("Only the requester and IT staff move a request along."))
    if data.get("version") is not None:
        core.check_version(request, data["version"])
    target = data["to"]
    step = WORKFLOW.check(request.status, target, core.role_of(actor))
    now = utcnow()
    extra = {}
    if target == "in_fulfilment" and not step.reopen:
        wanted = {k: data[k] for k in ("group", "assignee") if k in data}
        if "assignee" not in wanted and request.assignee is None and (
                request.group is None or core.is_member(actor, request.group)):
            wanted["assignee"] = actor.username  # whoever starts it has it
        extra.update(_assignment(request, wanted))
    if target == "approved":  # handed back: to the group's queue, nobody's any more
        extra["assignee"] = None
    if target == "fulfilled":
        extra.update(resolution_notes=data.get("resolution_notes"), resolved_at=now)
    if target in WORKFLOW.final_states:
        extra["closed_at"] = now
    if step.reopen:
        extra.update(reopen_count=request.reopen_count + 1, resolved_at=None,
                     resolution_notes=None)
    source = request.status
    core.transition(request, actor, WORKFLOW, target, data, extra, at=now)
    hooks = [("servicedesk_ticket_transitioned",
              {"ticket": request, "actor": actor, "from_status": source, "to_status": target})]
    if target == "cancelled" and source == "awaiting_approval":
        approval.withdraw(request, actor)
    core.commit_and_notify(hooks)
    return request


def comment_request(actor: User, number: str, body: str, public: bool = True):
    request = get_request(actor, number)
    comment = core.add_comment(request, actor, body, public, WORKFLOW)
    core.commit_and_notify([("servicedesk_ticket_commented",
                             {"ticket": request, "comment": comment, "actor": actor})])
    return comment
