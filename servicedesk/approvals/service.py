"""Approvals on tickets of any kind: request, decide, cancel, read.

Generic on purpose: this module knows tickets (the work-item core) and users, never a
kind. A kind (requests, changes, ...) asks for an approval inside its own unit of work
(``request_approval``: no commit, the kind commits with its own change), and learns the
outcome from the handler it registered for its ``Ticket.kind``
(``register_decision_handler``), which runs inside the deciding transaction: the
approval's outcome and the kind's reaction (say, a change moving to ``scheduled``)
commit together or not at all.

Rules: ``any`` (the first approval approves), ``all`` (every slot approves; a group
slot is filled by one member), ``quorum`` (``quorum`` slots approve). A rejection
rejects ``any`` and ``all``, and ``quorum`` once the slots left cannot reach it. The
ticket's requester never decides on their own ticket (four eyes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import attributes, joinedload, selectinload

from servicedesk.approvals.models import (
    DECISIONS,
    RULES,
    STATUSES,
    Approval,
    ApprovalApprover,
    ApprovalDecision,
)
from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import Group, User, group_members
from servicedesk.tickets import service as core
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import Ticket
from servicedesk.types import utcnow

MAX_LABEL = 120
MAX_COMMENT = 5000
MAX_ID = 2**31 - 1
LIST_LIMIT = 200

DecisionHandler = Callable[[Ticket, Approval, User], "list[tuple[str, dict]] | None"]
_HANDLERS: dict[str, DecisionHandler] = {}


def register_decision_handler(kind: str, fn: DecisionHandler) -> None:
    """Have ``fn(ticket, approval, actor)`` called when an approval on a ticket of
    ``kind`` (``Ticket.kind``, e.g. ``"request"``, ``"change"``) becomes approved or
    rejected: in the deciding transaction, before its commit. It may change the ticket
    (transition, audit) but must not commit; it may return a list of
    ``(hook_name, kwargs)`` to fire after the commit (e.g. the transition's hook). If it
    raises, nothing of the decision is saved and the error reaches the approver (a
    ServiceError keeps its status). Registering again for a kind replaces the handler."""
    _HANDLERS[kind] = fn


def decision_handler(kind: str) -> DecisionHandler | None:
    return _HANDLERS.get(kind)


_TICKET_URLS: dict[str, Callable[[str], str]] = {}


def register_ticket_url(kind: str, fn: Callable[[str], str]) -> None:
    """Have the approval inbox link tickets of ``kind`` to ``fn(number)`` (a URL; called
    in a request, so ``url_for`` works). Without one, the number is shown unlinked."""
    _TICKET_URLS[kind] = fn


def ticket_url(ticket: dict) -> str | None:
    """The page of a ticket (``to_dict(...)["ticket"]``), if its kind registered one."""
    fn = _TICKET_URLS.get(ticket["kind"])
    return fn(ticket["number"]) if fn is not None else None


# --- requesting ----------------------------------------------------------------------


def _invalid(field: str, message: str, reason: str | None = None) -> ValidationError:
    return ValidationError(message, fields={field: [reason or message]})


def _resolve_users(users: Iterable) -> list[User]:
    found: dict[int, User] = {}
    for user in users:
        if isinstance(user, str):
            user = core.find_user(user, "approvers")
        elif not isinstance(user, User):
            raise _invalid("approvers", _("Approvers must be users or usernames."))
        if not user.active:
            raise _invalid("approvers", _("%(username)s is not active.", username=user.username),
                           _("Inactive user."))
        found.setdefault(user.id, user)
    return list(found.values())


def _resolve_groups(groups: Iterable) -> list[Group]:
    found: dict[int, Group] = {}
    for group in groups:
        if isinstance(group, str):
            group = core.find_group(group, "approvers")
        elif not isinstance(group, Group):
            raise _invalid("approvers", _("Approver groups must be groups or group names."))
        found.setdefault(group.id, group)
    return list(found.values())


def request_approval(ticket: Ticket, actor: User | None, *, users: Iterable = (),
                     groups: Iterable = (), rule: str = "any", quorum: int | None = None,
                     label: str, due_in: timedelta | None = None) -> Approval:
    """Ask ``users`` and ``groups`` (objects or usernames / group names) to approve
    ``ticket``. Validates (422 naming ``approvers``, ``quorum``, ``rule``, ``label`` or
    ``due_in``), adds the rows, audits ``approval_requested`` and queues an
    ``approval_requested`` notification to each approver (each active member of a
    group) as the notification rules say (by default: e-mail, not mutable). Flushes (the approval gets its id) but does NOT commit: the caller commits
    with its own change. Whether ``actor`` may ask is the caller's business."""
    label = (label or "").strip() if isinstance(label, str) else ""
    if not label or len(label) > MAX_LABEL:
        raise _invalid("label", _("An approval needs a label of 1 to %(n)s characters.",
                                  n=MAX_LABEL))
    if rule not in RULES:
        raise _invalid("rule", _("The rule must be one of: %(rules)s.", rules=", ".join(RULES)))
    users, groups = _resolve_users(users), _resolve_groups(groups)
    if any(user.id == ticket.requester_id for user in users):
        raise _invalid("approvers", _("%(number)s was raised by %(username)s, who cannot "
                                      "approve it.", number=ticket.number,
                                      username=ticket.requester.username),
                       _("The requester cannot approve their own ticket."))
    for group in groups:
        if not any(m.active and m.id != ticket.requester_id for m in group.members):
            raise _invalid("approvers", _("Group %(name)s has no active member who may "
                                          "approve.", name=group.name))
    slots = len(users) + len(groups)
    if slots == 0:
        raise _invalid("approvers", _("Name at least one approver (a user or a group)."))
    if rule == "quorum":
        if (not isinstance(quorum, int) or isinstance(quorum, bool)
                or not 1 <= quorum <= slots):
            raise _invalid("quorum", _("The quorum must be a whole number from 1 to %(n)s "
                                       "(the number of approvers).", n=slots))
    elif quorum is not None:
        raise _invalid("quorum", _("A quorum is only for the rule quorum."))
    if due_in is not None and (not isinstance(due_in, timedelta) or due_in <= timedelta(0)):
        raise _invalid("due_in", _("The approval deadline must be in the future."))
    now = utcnow()
    approval = Approval(
        ticket_id=ticket.id, label=label, rule=rule, quorum=quorum, status="pending",
        requested_by_id=actor.id if actor is not None else None, requested_at=now,
        due_at=now + due_in if due_in is not None else None,
    )
    approval.ticket = ticket
    approval.approvers = ([ApprovalApprover(user_id=u.id, user=u) for u in users]
                          + [ApprovalApprover(group_id=g.id, group=g) for g in groups])
    db.session.add(approval)
    db.session.flush()
    core.record(ticket, actor, "approval_requested", "approval", None,
                f"{label} (#{approval.id})", at=now)
    # Rule-driven (notify.rules: event ``approval_requested``, recipient kind
    # ``approver``), so admins can route it to other backends; we name the approvers.
    from servicedesk.notify.rules import notify_event

    notify_event("approval_requested", ticket, actor=actor,
                 context={"approval": approval, "url": inbox_url()},
                 recipients={"approver": eligible_users(approval)},
                 dedupe_suffix=f"approval-{approval.id}", fresh=True)
    return approval


def eligible_users(approval: Approval) -> list[User]:
    """Every active person who may fill one of the approval's slots (the ticket's
    requester never)."""
    found: dict[int, User] = {}
    for slot in approval.approvers:
        for user in [slot.user] if slot.user is not None else slot.group.members:
            if user.active and user.id != approval.ticket.requester_id:
                found.setdefault(user.id, user)
    return list(found.values())


def cancel_pending(ticket: Ticket, actor: User | None, reason: str = "") -> list[Approval]:
    """Cancel the ticket's pending approvals (the ticket was withdrawn or replanned):
    audited, no handler called, NO commit (the caller commits with its change)."""
    now = utcnow()
    cancelled = list(db.session.scalars(
        select(Approval).where(Approval.ticket_id == ticket.id, Approval.status == "pending")))
    for approval in cancelled:
        approval.status, approval.decided_at = "cancelled", now
        core.record(ticket, actor, "approval_cancelled", "approval", "pending",
                    f"{approval.label} (#{approval.id})" + (f": {reason}" if reason else ""),
                    at=now)
    return cancelled


# --- deciding ------------------------------------------------------------------------


def _load(approval_id, lock: bool = False) -> Approval:
    if not isinstance(approval_id, int) or isinstance(approval_id, bool) \
            or not 1 <= approval_id <= MAX_ID:
        raise NotFound(_("No approval %(id)s.", id=approval_id))
    query = (select(Approval).where(Approval.id == approval_id)
             .options(joinedload(Approval.ticket), selectinload(Approval.approvers),
                      selectinload(Approval.decisions))
             .execution_options(populate_existing=True))
    if lock:  # PostgreSQL: deciders of one approval queue here and see each other's votes
        query = query.with_for_update(of=Approval.__table__)
    approval = db.session.scalars(query).unique().one_or_none()
    if approval is None:
        raise NotFound(_("No approval %(id)s.", id=approval_id))
    return approval


def _group_ids(user: User) -> set[int]:
    # The relationship, loaded once per request's session: a list of approvals asks
    # for each one without a query each.
    return {group.id for group in user.groups}


def _my_slots(approval: Approval, actor: User) -> list[ApprovalApprover]:
    """The slots ``actor`` could fill: named ones first, then their groups'."""
    groups = _group_ids(actor)
    named = [s for s in approval.approvers if s.user_id == actor.id]
    return named + [s for s in approval.approvers if s.group_id in groups]


def may_see(actor: User, approval: Approval) -> bool:
    """Approvers (named, or members of a named group), deciders, and whoever may see
    the ticket."""
    if actor is None or not actor.active:
        return False
    if _my_slots(approval, actor) or any(d.user_id == actor.id for d in approval.decisions):
        return True
    return db.session.scalar(select(Ticket.id).where(
        Ticket.id == approval.ticket_id, visible_tickets_clause(actor))) is not None


def get_approval(actor: User, approval_id) -> Approval:
    approval = _load(approval_id)
    if not may_see(actor, approval):
        raise NotFound(_("No approval %(id)s.", id=approval_id))
    return approval


def evaluate(approval: Approval) -> str:
    """The status the approval's decisions add up to (``pending`` while undecided)."""
    votes = [d.decision for d in approval.decisions]
    approved, rejected = votes.count("approve"), votes.count("reject")
    slots = len(approval.approvers)
    if approval.rule == "quorum":
        if approved >= approval.quorum:
            return "approved"
        return "rejected" if slots - rejected < approval.quorum else "pending"
    if rejected:
        return "rejected"
    if approval.rule == "any":
        return "approved" if approved else "pending"
    return "approved" if approved >= slots else "pending"


def decide(actor: User, approval_id: int, decision: str, comment: str | None = None,
           version: int | None = None) -> Approval:
    """Record ``actor``'s ``approve`` / ``reject``; when that settles the approval,
    call the kind's handler in the same transaction. Commits once.

    404 unknown (or invisible), 409 stale ``version`` / not pending / already decided /
    the actor's group slot was filled by a colleague, 403 not an approver or the
    ticket's own requester, 422 bad ``decision`` or a rejection without ``comment``."""
    approval = _load(approval_id, lock=True)
    if not may_see(actor, approval):
        raise NotFound(_("No approval %(id)s.", id=approval_id))
    ticket = approval.ticket
    if version is not None and version != approval.version:
        raise Conflict(
            _("The approval was changed by someone else (version %(current)s, you sent "
              "%(sent)s); reload it.", current=approval.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=approval.version)]},
            code="stale_version")
    if decision not in DECISIONS:
        raise _invalid("decision", _("The decision must be approve or reject."))
    comment = comment.strip() if isinstance(comment, str) else None
    if comment and len(comment) > MAX_COMMENT:
        raise _invalid("comment", _("The comment is too long (at most %(n)s characters).",
                                    n=MAX_COMMENT))
    if approval.status != "pending":
        raise Conflict(_("This approval is already %(status)s.", status=approval.status),
                       code="approval_closed")
    if actor.id == ticket.requester_id:
        raise Forbidden(_("You raised %(number)s: you cannot approve your own ticket.",
                          number=ticket.number), code="own_ticket")
    if any(d.user_id == actor.id for d in approval.decisions):
        raise Conflict(_("You have already decided on this approval."), code="already_decided")
    mine = _my_slots(approval, actor)
    if not mine:
        raise Forbidden(_("You are not an approver of this approval."), code="not_approver")
    filled = {d.slot_id for d in approval.decisions}
    slot = next((s for s in mine if s.id not in filled), None)
    if slot is None:
        raise Conflict(_("A colleague of your group has already decided on this approval."),
                       code="already_decided")
    if decision == "reject" and not comment:
        raise _invalid("comment", _("Say why you reject it."), _("Required to reject."))
    now = utcnow()
    approval.decisions.append(ApprovalDecision(
        slot_id=slot.id, user_id=actor.id, user=actor, decision=decision,
        comment=comment or None, at=now))
    # Every decision bumps the approval's version, so two decisions that each saw the
    # other missing (SQLite has no row lock) cannot both commit: the second gets a 409.
    attributes.flag_modified(approval, "status")
    entries = [core.record(ticket, actor, "approval_decision", "approval", None,
                           f"{approval.label}: {decision}" + (f" – {comment}" if comment else ""),
                           at=now)]
    hooks: list[tuple[str, dict]] = []
    outcome = evaluate(approval)
    if outcome != "pending":
        approval.status, approval.decided_at = outcome, now
        entries.append(core.record(ticket, actor, f"approval_{outcome}", "approval",
                                   "pending", f"{approval.label} (#{approval.id})", at=now))
        handler = decision_handler(ticket.kind)
        if handler is not None:
            hooks.extend(handler(ticket, approval, actor) or ())
    for user in _ticket_people(approval):
        if user.id != actor.id:
            _notify("approval_decided", user, approval, actor,
                    f"approval-{approval.id}-decided-{actor.id}-{user.id}",
                    decision=decision, comment=comment, outcome=outcome)
    core.commit_and_notify(
        [("servicedesk_ticket_updated", {"ticket": ticket, "actor": actor, "changes": entries})]
        + hooks)
    return approval


def _ticket_people(approval: Approval) -> list[User]:
    ticket = approval.ticket
    found: dict[int, User] = {}
    for user in (ticket.requester, ticket.assignee, approval.requested_by):
        if user is not None and user.active:
            found.setdefault(user.id, user)
    return list(found.values())


# --- reading -------------------------------------------------------------------------


def _list_options():
    return (joinedload(Approval.ticket), selectinload(Approval.approvers),
            selectinload(Approval.decisions))


def _involving(actor: User):
    """Approvals naming ``actor`` or one of their groups, or that they decided on."""
    my_groups = select(group_members.c.group_id).where(group_members.c.user_id == actor.id)
    named = exists().where(ApprovalApprover.approval_id == Approval.id,
                           or_(ApprovalApprover.user_id == actor.id,
                               ApprovalApprover.group_id.in_(my_groups)))
    decided = exists().where(ApprovalDecision.approval_id == Approval.id,
                             ApprovalDecision.user_id == actor.id)
    return named, decided, my_groups


def pending_for(actor: User, limit: int = LIST_LIMIT) -> list[Approval]:
    """The inbox: pending approvals ``actor`` may decide now (an open slot of theirs,
    not yet decided by them, not on a ticket they raised), oldest request first."""
    query = (select(Approval).join(Ticket, Ticket.id == Approval.ticket_id)
             .where(*_decidable_by(actor))
             .order_by(Approval.requested_at, Approval.id).limit(limit)
             .options(*_list_options()))
    return list(db.session.scalars(query).unique())


def has_pending(actor: User) -> bool:
    """Whether ``actor``'s inbox holds anything (one small query)."""
    return bool(db.session.scalar(
        select(exists().where(Ticket.id == Approval.ticket_id, *_decidable_by(actor)))))


def _decidable_by(actor: User) -> tuple:
    """The conditions of the inbox: pending, an open slot of theirs, not decided by
    them, not on a ticket they raised (the query joins ``Ticket``)."""
    _named, decided, my_groups = _involving(actor)
    open_slot = exists().where(
        ApprovalApprover.approval_id == Approval.id,
        or_(ApprovalApprover.user_id == actor.id, ApprovalApprover.group_id.in_(my_groups)),
        ~exists().where(ApprovalDecision.slot_id == ApprovalApprover.id))
    return (Approval.status == "pending", open_slot, ~decided,
            Ticket.requester_id != actor.id)


def list_for(actor: User, status: str = "pending", limit: int = LIST_LIMIT) -> list[Approval]:
    """``pending``: the inbox (``pending_for``). Another status: approvals in it that
    name ``actor`` (or their groups) or that they decided on, newest first."""
    if status not in STATUSES:
        raise ValidationError(_("Unknown status."), fields={"status": [
            _("Must be one of: %(statuses)s.", statuses=", ".join(STATUSES))]})
    if status == "pending":
        return pending_for(actor, limit)
    named, decided, _groups = _involving(actor)
    query = (select(Approval).where(Approval.status == status, or_(named, decided))
             .order_by(Approval.requested_at.desc(), Approval.id.desc()).limit(limit)
             .options(*_list_options()))
    return list(db.session.scalars(query).unique())


def approvals_for_ticket(ticket: Ticket) -> list[Approval]:
    """Every approval of ``ticket``, oldest first, with slots and decisions loaded.
    The caller has checked that its actor may see the ticket."""
    return list(db.session.scalars(
        select(Approval).where(Approval.ticket_id == ticket.id).order_by(Approval.id)
        .options(*_list_options())).unique())


def ticket_approvals(actor: User, number: str) -> tuple[Ticket, list[Approval]]:
    """A ticket's approvals, for whoever may see the ticket (else 404)."""
    ticket = core.get_visible_ticket(actor, Ticket, number)
    return ticket, approvals_for_ticket(ticket)


def can_decide(actor: User | None, approval: Approval) -> bool:
    if actor is None or approval.status != "pending" or actor.id == approval.ticket.requester_id:
        return False
    if any(d.user_id == actor.id for d in approval.decisions):
        return False
    filled = {d.slot_id for d in approval.decisions}
    return any(s.id not in filled for s in _my_slots(approval, actor))


def to_dict(approval: Approval, actor: User | None = None) -> dict:
    """The approval as plain data (for API schemas, pages and the kinds' own schemas)."""
    ticket = approval.ticket
    by_slot = {d.slot_id: d for d in approval.decisions}
    return {
        "id": approval.id,
        "ticket": {"number": ticket.number, "title": ticket.title, "kind": ticket.kind,
                   "status": ticket.status},
        "label": approval.label,
        "rule": approval.rule,
        "quorum": approval.quorum,
        "status": approval.status,
        "requested_by": approval.requested_by.username if approval.requested_by else None,
        "requested_at": approval.requested_at,
        "due_at": approval.due_at,
        "overdue": approval.overdue,
        "escalated_at": approval.escalated_at,
        "decided_at": approval.decided_at,
        "version": approval.version,
        "approvers": [{
            "user": slot.user.username if slot.user else None,
            "group": slot.group.name if slot.group else None,
            "name": slot.user.name if slot.user else slot.group.name,
            "decision": by_slot[slot.id].decision if slot.id in by_slot else None,
            "decided_by": by_slot[slot.id].user.username if slot.id in by_slot else None,
        } for slot in approval.approvers],
        "decisions": [{
            "user": d.user.username, "user_name": d.user.name, "decision": d.decision,
            "comment": d.comment, "at": d.at,
        } for d in approval.decisions],
        "can_decide": can_decide(actor, approval),
    }


# --- notifications -------------------------------------------------------------------


def inbox_url() -> str:
    """The absolute link to the approval inbox, for e-mails (jobs have no request)."""
    base = current_app.config.get("SERVICEDESK_BASE_URL")
    if not base and has_request_context():
        base = request.host_url
    return (base or "http://localhost/").rstrip("/") + "/approvals"


def _notify(event: str, user: User, approval: Approval, actor: User | None,
            dedupe_key: str, **context) -> None:
    from servicedesk.notify.service import queue_notification

    queue_notification(event, user, ticket=approval.ticket, dedupe_key=dedupe_key,
                       context={"approval": approval, "actor": actor, "url": inbox_url(),
                                **context})

