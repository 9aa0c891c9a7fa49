"""Change operations. Each takes the acting user, checks, changes, audits, commits, hooks.

Who sees changes: every member of IT staff sees every change (the calendar, conflicts
and the CAB need the whole picture); requesters see none (404 on every change URL).
The workflow's extra rules (per type, required plans and window, risk, freeze windows,
approval) are here; the edges are data in ``changes.workflow``.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import exists, select
from sqlalchemy.orm import joinedload

from servicedesk import cmdb_links
from servicedesk.changes import admin, approval, calendar
from servicedesk.changes.models import PREFIX, Change, change_incidents, change_problems
from servicedesk.changes.risk import assess
from servicedesk.changes.workflow import CHANGE_WORKFLOW, PLANS, TYPE_EDGES, WINDOW
from servicedesk.errors import Conflict, NotFound, ServiceError, ValidationError
from servicedesk.extensions import db
from servicedesk.i18n import N_
from servicedesk.identity.models import User
from servicedesk.tickets import service as core
from servicedesk.tickets.models import Ticket
from servicedesk.types import utcnow

WORKFLOW = CHANGE_WORKFLOW

_PLANNING = {"change_type", "template_id", "risk_answers", "affected_cis", "impact", "urgency",
             *PLANS, *WINDOW}
_ALWAYS = {"title", "description", "group", "assignee"}
_STAFF = _ALWAYS | _PLANNING
CREATE_FIELDS = {"agent": _STAFF, "manager": _STAFF, "admin": _STAFF}
UPDATE_FIELDS = CREATE_FIELDS
# Once a change goes to authorization, what was assessed and approved is fixed.
PLANNING_STATES = ("draft", "assessment")


WHY_NOT = {
    "priority": N_("Priority follows from impact and urgency."),
    "status": N_("Change the status with a transition."),
    "risk_level": N_("The risk level follows from the risk answers."),
    "requester": N_("The requester of a change is the one who raises it."),
}


# --- reading -------------------------------------------------------------------------


def get_change(actor: User, number: str) -> Change:
    admin.check_staff(actor)
    change = db.session.scalars(select(Change).where(Change.number == number)).one_or_none()
    if change is None:
        raise NotFound(_("No change %(number)s.", number=number))
    return change


def list_changes(actor: User, filters: dict, cursor: int | None = None, limit: int = 50):
    """Changes, newest first, filtered; returns (items, next_cursor: the last id)."""
    admin.check_staff(actor)
    query = select(Change).options(joinedload(Change.group), joinedload(Change.assignee),
                                   joinedload(Change.requester))
    if filters.get("status"):
        query = query.where(Change.status.in_(filters["status"]))
    if filters.get("change_type"):
        query = query.where(Change.change_type.in_(filters["change_type"]))
    if filters.get("risk_level"):
        query = query.where(Change.risk_level.in_(filters["risk_level"]))
    if "caused_incidents" in filters:
        caused = exists().where(change_incidents.c.change_id == Change.id)
        query = query.where(caused if filters["caused_incidents"] else ~caused)
    if cursor:
        query = query.where(Ticket.id < cursor)
    rows = list(db.session.scalars(query.order_by(Ticket.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def linked(change: Change) -> dict:
    """The problems it fixes and the incidents it caused: number, title, status."""
    result = {}
    for key, table, column in (("problems", change_problems, change_problems.c.problem_id),
                               ("caused_incidents", change_incidents,
                                change_incidents.c.incident_id)):
        rows = db.session.execute(
            select(Ticket.number, Ticket.title, Ticket.status).join(table, column == Ticket.id)
            .where(table.c.change_id == change.id).order_by(Ticket.number)).all()
        result[key] = [{"number": n, "title": t, "status": s} for n, t, s in rows]
    return result


# --- writing -------------------------------------------------------------------------


def _apply_input(change: Change, data: dict, creating: bool) -> dict:
    """The attribute changes ``data`` asks for (validated against the change)."""
    changes = {}
    for key in ("title", "description", *PLANS):
        if key in data:
            changes[key] = data[key]
    if "change_type" in data:
        changes["change_type"] = data["change_type"]
    kind = changes.get("change_type", change.change_type)
    if "template_id" in data or (creating and kind == "standard"):
        template = None
        if data.get("template_id") is not None:
            template = _template(data["template_id"])
        changes["template"] = template
        if template is not None and creating:
            for key in ("implementation_plan", "backout_plan", "test_plan"):
                changes.setdefault(key, getattr(template, key) or None)
            if not data.get("description"):
                changes.setdefault("description", template.description)
    template = changes.get("template", change.template)
    if kind == "standard":
        if template is None:
            raise ValidationError(
                _("A standard change is raised from a pre-approved template."),
                fields={"template_id": [_("Required for a standard change.")]})
        changes["risk_level"] = "low"  # pre-approved: assessed once, in the template
        changes["risk_answers"] = None
    elif "template" in changes and template is not None:
        raise ValidationError(_("Templates are for standard changes."),
                              fields={"template_id": [_("Only for a standard change.")]})
    if "risk_answers" in data and kind != "standard":
        answers = data["risk_answers"]
        changes["risk_answers"] = answers
        changes["risk_level"] = assess(answers) if answers is not None else None
    elif kind != "standard" and change.change_type == "standard":
        changes.update(risk_level=None, risk_answers=None)  # to be assessed now
    if kind != "standard" and change.template_id is not None and "template" not in changes:
        changes["template"] = None  # no longer a standard change
    for key in WINDOW:
        if key in data:
            changes[key] = data[key]
    calendar.check_window(changes.get("planned_start", change.planned_start),
                          changes.get("planned_end", change.planned_end))
    if "impact" in data or "urgency" in data:
        impact = data.get("impact") or change.impact
        urgency = data.get("urgency") or change.urgency
        changes.update(impact=impact, urgency=urgency,
                       priority=core.compute_priority(impact, urgency))
    core.requested_group(change, data, changes)
    if "assignee" in data:
        changes["assignee"] = core.requested_assignee(change, data)
    return changes


def _template(template_id: int):
    from servicedesk.changes.models import ChangeTemplate

    template = db.session.get(ChangeTemplate, template_id)
    if template is None or not template.active:
        raise ValidationError(_("No such template."),
                              fields={"template_id": [_("Unknown or retired template.")]})
    return template


def create_change(actor: User, data: dict) -> Change:
    admin.check_staff(actor)
    core.check_writable(actor, data.keys(), CREATE_FIELDS, WHY_NOT)
    now = utcnow()
    change = Change(title=data["title"], description="", change_type="normal",
                    status=WORKFLOW.initial, is_open=True, impact="medium", urgency="medium",
                    priority=core.compute_priority("medium", "medium"), requester=actor,
                    channel="web", review_required=False, created_at=now, updated_at=now)
    data = {"change_type": data.get("change_type", "normal"), **data}
    changes = _apply_input(change, data, creating=True)
    if "group" not in changes:  # the raiser's own first group
        group = next(iter(sorted(actor.groups, key=lambda g: (g.support_line, g.name))), None)
        changes.update(group=group, support_line=group.support_line if group else None)
    for attr, value in changes.items():
        setattr(change, attr, value)
    change.review_required = change.change_type == "emergency"
    cis = cmdb_links.resolve(data["affected_cis"]) if data.get("affected_cis") else []
    core.add_numbered(change, actor, PREFIX)
    cmdb_links.set_created_cis(change, actor, cis)
    core.commit_and_notify([("servicedesk_ticket_created", {"ticket": change, "actor": actor})])
    return change


def update_change(actor: User, number: str, data: dict) -> Change:
    data = dict(data)
    version = data.pop("version", None)
    change = get_change(actor, number)
    core.check_writable(actor, data.keys(), UPDATE_FIELDS, WHY_NOT)
    if WORKFLOW.is_final(change.status):
        raise Conflict(_("%(number)s is %(status)s; it can no longer be edited.",
                         number=number, status=change.status), code="ticket_closed")
    locked = sorted(set(data) & _PLANNING) if change.status not in PLANNING_STATES else []
    if locked:
        raise Conflict(
            _("%(number)s has gone to authorization; its plan, window, CIs and risk are "
              "fixed. Cancel it and raise a new change to plan differently.", number=number),
            fields={f: [_("Fixed once the change went to authorization.")] for f in locked},
            code="change_planned")
    core.check_version(change, version)
    changes = _apply_input(change, data, creating=False)
    cis = cmdb_links.resolve(data["affected_cis"]) if "affected_cis" in data else None
    at = utcnow()
    entries = core.apply_changes(change, actor, changes, action="updated", at=at)
    if "change_type" in changes:
        change.review_required = change.change_type == "emergency"
    if cis is not None:
        entry = cmdb_links.set_affected_cis(change, actor, cis, "updated", at=at)
        entries += [entry] if entry is not None else []
    hooks = [("servicedesk_ticket_updated",
              {"ticket": change, "actor": actor, "changes": entries})] if entries else []
    core.commit_and_notify(hooks)
    return change


def _check_edge(change: Change, target: str, actor: User) -> None:
    step = WORKFLOW.check(change.status, target, core.role_of(actor))
    types = TYPE_EDGES.get((step.source, step.target))
    if types is not None and change.change_type not in types:
        allowed = ", ".join(_allowed(change, actor)) or _("none")
        raise Conflict(
            _("A %(type)s change cannot move from %(source)s to %(target)s; allowed: "
              "%(allowed)s.", type=change.change_type, source=change.status, target=target,
              allowed=allowed),
            fields={"to": [_("Allowed from %(source)s: %(allowed)s.", source=change.status,
                             allowed=allowed)]},
            code="invalid_transition")


def _allowed(change: Change, actor: User | None) -> list[str]:
    from servicedesk.changes.workflow import allowed_for

    return allowed_for(change, core.role_of(actor))


def allowed_transitions(change: Change, actor: User | None) -> list[str]:
    return _allowed(change, actor)


def transition_change(actor: User, number: str, data: dict) -> Change:
    change = get_change(actor, number)
    if data.get("version") is not None:
        core.check_version(change, data["version"])
    target = data["to"]
    _check_edge(change, target, actor)
    now = utcnow()
    extra: dict = {}
    current = {f: getattr(change, f) for f in PLANS + WINDOW}
    current["review_outcome"] = data.get("review_outcome")
    step = WORKFLOW.check(change.status, target, core.role_of(actor))
    missing = [f for f in step.requires if current.get(f) in (None, "")]
    if missing:  # what core.transition would say; said first, before the rules below
        raise ValidationError(
            _("Moving to %(target)s needs: %(fields)s.", target=target, fields=", ".join(missing)),
            fields={f: [_("Required to move to %(target)s.", target=target)] for f in missing})
    if target == "authorization" or target == "scheduled":
        if change.change_type == "normal" and change.risk_level is None:
            raise ValidationError(
                _("Answer the risk questionnaire before authorization."),
                fields={"risk_answers": [_("Required to move to %(target)s.",
                                           target=target)]})
        calendar.check_freeze(change)
    if target == "implementing":
        extra["actual_start"] = data.get("actual_start") or now
    if target == "review":
        extra["actual_end"] = data.get("actual_end") or now
        if extra["actual_end"] < (change.actual_start or extra["actual_end"]):
            raise ValidationError(_("A change ends after it starts."),
                                  fields={"actual_end": [_("Must be after actual_start.")]})
    if target == "closed":
        if change.review_required and not data.get("review_notes"):
            raise ValidationError(  # an emergency change is reviewed afterwards, in words
                _("An emergency change is closed with the notes of its review."),
                fields={"review_notes": [_("Required to close an emergency change.")]})
        extra.update(review_outcome=data.get("review_outcome"),
                     review_notes=data.get("review_notes"), closed_at=now)
    if target in ("cancelled", "rejected"):
        extra["closed_at"] = now
    source = change.status
    who = approval.approvers(change) if target == "authorization" else None
    try:
        if data.get("comment"):  # written before the step: a final status takes none
            core.add_comment(change, actor, data["comment"], False, WORKFLOW)
        core.transition(change, actor, WORKFLOW, target, current, extra, at=now)
        if target == "authorization":
            approval.request(change, actor, who)
        elif source == "authorization":  # cancelled while waiting: withdraw the ask
            approval.cancel(change, actor, _("the change was cancelled"))
    except ServiceError:
        db.session.rollback()  # nothing of a refused step stays in the session
        raise
    core.commit_and_notify([("servicedesk_ticket_transitioned",
                             {"ticket": change, "actor": actor, "from_status": source,
                              "to_status": target})])
    return change


def decide(change: Change, approved: bool) -> list:
    """The approval's outcome (the approvals package calls this, through our handler,
    in its own transaction: no commit here): approved → scheduled, rejected → rejected.
    Returns the hooks to fire after the commit."""
    if change.status != "authorization":
        return []  # cancelled meanwhile: the decision changes nothing
    target = "scheduled" if approved else "rejected"
    extra = {} if approved else {"closed_at": utcnow()}
    core.transition(change, None, WORKFLOW, target, {}, extra)
    return [("servicedesk_ticket_transitioned",
             {"ticket": change, "actor": None, "from_status": "authorization",
              "to_status": target})]


def decide_approval(actor: User, number: str, data: dict):
    """``actor`` approves or rejects the change's pending approval (with a comment)."""
    change = get_change(actor, number)
    decided = approval.decide_on(actor, change, data)
    return change, decided


def comment_change(actor: User, number: str, body: str, public: bool = True):
    change = get_change(actor, number)
    comment = core.add_comment(change, actor, body, public, WORKFLOW)
    core.commit_and_notify([("servicedesk_ticket_commented",
                             {"ticket": change, "comment": comment, "actor": actor})])
    return comment


# --- links ---------------------------------------------------------------------------

LINKS = {
    # link kind: (table, its ticket column, the linked ticket's kind, audit field)
    "problem": (change_problems, "problem_id", "problem", "problems"),
    "incident": (change_incidents, "incident_id", "incident", "caused_incidents"),
}


def _linked_ticket(actor: User, kind: str, number: str) -> Ticket:
    from servicedesk.tickets.access import visible_tickets_clause

    _table, _column, ticket_kind, _field = LINKS[kind]
    ticket = db.session.scalars(select(Ticket).where(
        Ticket.number == number, Ticket.kind == ticket_kind,
        visible_tickets_clause(actor, Ticket))).one_or_none()
    if ticket is None:
        raise ValidationError(_("No %(kind)s %(number)s.", kind=kind, number=number),
                              fields={"number": [_("Unknown %(kind)s.", kind=kind)]})
    return ticket


def link(actor: User, number: str, kind: str, other: str) -> Change:
    change = get_change(actor, number)
    ticket = _linked_ticket(actor, kind, other)
    table, column, _kind, field = LINKS[kind]
    present = db.session.scalar(select(exists().where(
        table.c.change_id == change.id, table.c[column] == ticket.id)))
    if present:
        return change
    db.session.execute(table.insert().values(change_id=change.id, created_at=utcnow(),
                                             **{column: ticket.id}))
    change.updated_at = utcnow()
    entry = core.record(change, actor, "linked", field, None, ticket.number)
    core.commit_and_notify([("servicedesk_ticket_updated",
                             {"ticket": change, "actor": actor, "changes": [entry]})])
    return change


def unlink(actor: User, number: str, kind: str, other: str) -> Change:
    change = get_change(actor, number)
    table, column, ticket_kind, field = LINKS[kind]
    ticket = db.session.scalars(select(Ticket).where(
        Ticket.number == other, Ticket.kind == ticket_kind)).one_or_none()
    deleted = 0
    if ticket is not None:
        deleted = db.session.execute(table.delete().where(
            table.c.change_id == change.id, table.c[column] == ticket.id)).rowcount
    if not deleted:
        raise NotFound(_("%(number)s is not linked to %(other)s.", number=number, other=other))
    change.updated_at = utcnow()
    entry = core.record(change, actor, "unlinked", field, ticket.number, None)
    core.commit_and_notify([("servicedesk_ticket_updated",
                             {"ticket": change, "actor": actor, "changes": [entry]})])
    return change


# The approvals package settles a change's authorization through this handler.
approval.register()
