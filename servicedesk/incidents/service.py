"""Incident operations. Each takes the acting user, checks, changes, audits, commits, hooks."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from servicedesk import cmdb_links
from servicedesk.errors import Conflict, Forbidden, ValidationError
from servicedesk.extensions import db, read_only_transaction
from servicedesk.i18n import N_
from servicedesk.identity.models import Group, User, group_members
from servicedesk.incidents.models import PREFIX, Incident
from servicedesk.incidents.workflow import INCIDENT_WORKFLOW
from servicedesk.tickets import service as core
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.sla.models import SlaPolicy
from servicedesk.tickets.paging import (
    after_cursor,
    cut_page,
    decode_cursor,
    keyset_columns,
    order_by,
    to_utc,
)
from servicedesk.types import utcnow

WORKFLOW = INCIDENT_WORKFLOW

_REPORTED = {"title", "description", "impact", "urgency", "category_id", "subcategory_id",
             "service_id", "ci_id"}
_STAFF_CREATE = _REPORTED | {"requester", "group", "assignee", "channel", "major",
                             "affected_cis"}
_STAFF_UPDATE = _REPORTED | {"group", "assignee", "major", "affected_cis"}

# What each role may write, per action (ASVS 15.3.3): everything else is refused.
CREATE_FIELDS = {
    "requester": _REPORTED,
    "agent": _STAFF_CREATE,
    "manager": _STAFF_CREATE,
    "admin": _STAFF_CREATE,
}
UPDATE_FIELDS = {
    "requester": {"title", "description", "impact", "urgency", "category_id", "subcategory_id"},
    "agent": _STAFF_UPDATE,
    "manager": _STAFF_UPDATE,
    "admin": _STAFF_UPDATE,
}


WHY_NOT = {
    "priority": N_("Priority follows from impact and urgency."),
    "status": N_("Change the status with a transition."),
    "group": N_("Only IT staff assign tickets."),
    "assignee": N_("Only IT staff assign tickets."),
    "requester": N_("Only IT staff raise incidents for someone else."),
    "channel": N_("Set by the channel the incident came in through."),
    "affected_cis": N_("Only IT staff link configuration items."),
}


# --- reading -------------------------------------------------------------------------


def get_incident(actor: User, number: str) -> Incident:
    return core.get_visible_ticket(actor, Incident, number)


_LIST_OPTIONS = (
    joinedload(Incident.requester),
    joinedload(Incident.assignee),
    joinedload(Incident.group),
    joinedload(Incident.category),
    joinedload(Incident.subcategory),
    # The SLA summary of each row: one-to-one joins, so the page stays one statement.
    joinedload(Incident.sla_policy).joinedload(SlaPolicy.calendar),
    joinedload(Incident.response_clock),
    joinedload(Incident.resolution_clock),
)

# Sort keys come from this table only (never from request strings turned into columns).
SORTS = {
    "created_at": ((Incident.created_at, False),),
    "-created_at": ((Incident.created_at, True),),
    "updated_at": ((Incident.updated_at, False),),
    "-updated_at": ((Incident.updated_at, True),),
    # The queue: most urgent first, then oldest first.
    "priority": ((Incident.priority, False), (Incident.created_at, False)),
    "-priority": ((Incident.priority, True), (Incident.created_at, False)),
    # Breaches next: earliest unmet SLA due instant first, tickets without one last (the
    # key is never NULL, see Ticket.sla_due_rank), then as the queue. Open tickets in
    # this order are read from ix_tickets_sla_due.
    "due": ((Incident.sla_due_rank, False), (Incident.priority, False),
            (Incident.created_at, False)),
}
DEFAULT_SORT = "-created_at"


def list_incidents(actor: User, filters: dict, sort: str = DEFAULT_SORT,
                   cursor: str | None = None, limit: int = 50):
    """Incidents ``actor`` may see, filtered, in ``sort`` order; returns (items, next_cursor).

    ``filters`` keys: status (list), priority (list), group, assignee (username, "me"
    or "none"), requester, category_id, created_after, created_before, open (bool).
    The API's list reads the same page without ORM objects: incidents.listing.
    """
    columns, where, order = list_criteria(actor, filters, sort, cursor)
    query = select(Incident).where(*where)
    rows = list(
        db.session.scalars(query.options(*_LIST_OPTIONS).order_by(*order).limit(limit + 1))
    )
    return cut_page(rows, columns, limit)


def list_criteria(actor: User, filters: dict, sort: str, cursor: str | None):
    """(key columns, WHERE clauses, ORDER BY) of a list page: shared by list_incidents
    and the API's lean read (incidents.listing), so both select the same rows."""
    columns = keyset_columns(SORTS, sort)  # tie-breaker tickets.id: see there
    core.refuse_probing_filters(
        actor, filters,
        _("You see only the incidents you raised; these filters are for IT staff."))
    where = [visible_tickets_clause(actor, Incident),
             *core.list_filters(Incident, actor, filters)]
    if filters.get("priority"):
        where.append(Incident.priority.in_(filters["priority"]))
    if filters.get("requester"):
        who = filters["requester"]
        where.append(
            Incident.requester_id == (actor if who == "me" else core.find_user(who, "requester")).id
        )
    if filters.get("category_id"):
        category = filters["category_id"]
        where.append(
            or_(Incident.category_id == category, Incident.subcategory_id == category)
        )
    if filters.get("created_after"):
        where.append(
            Incident.created_at >= to_utc(filters["created_after"], "created_after"))
    if filters.get("created_before"):
        where.append(
            Incident.created_at < to_utc(filters["created_before"], "created_before"))
    if cursor:
        where.append(after_cursor(columns, decode_cursor(cursor, columns)))
    return columns, where, order_by(columns)


# --- assignment ----------------------------------------------------------------------


def _home_group(user: User) -> Group | None:
    return db.session.scalars(
        select(Group)
        .join(group_members, group_members.c.group_id == Group.id)
        .where(group_members.c.user_id == user.id)
        .order_by(Group.support_line, Group.name)
        .limit(1)
    ).first()


def _assignment(ticket: Incident, data: dict) -> dict:
    """The group / line / assignee / status changes that ``data`` asks for."""
    changes = {}
    group = core.requested_group(ticket, data, changes)
    assignee = core.requested_assignee(ticket, data)
    if ("assignee" not in data and assignee is not None and group is not None
            and not core.is_member(assignee, group)):
        assignee = None  # moved to a group its assignee is not in: back to that queue
    if assignee is not None:
        if group is None:
            group = _home_group(assignee)
            if group is None:
                raise ValidationError(
                    _("%(username)s belongs to no group.", username=assignee.username),
                    fields={"assignee": [_("The assignee must belong to a group.")]},
                )
            changes["group"] = group
            changes["support_line"] = group.support_line
        else:
            core.check_member(assignee, group)
    changes["assignee"] = assignee
    if ticket.status == "new" and assignee is not None:
        changes["status"] = "assigned"
    elif ticket.status == "assigned" and assignee is None:
        changes["status"] = "new"
    return changes


def _apply_with_status(ticket, actor, changes, action, hooks):
    """Apply changes; a status change among them is audited and hooked as a transition."""
    target = changes.pop("status", None)
    at = utcnow()  # one change, one instant (a status and its pending reason)
    entries = core.apply_changes(ticket, actor, changes, action=action, at=at)
    if target is not None and target != ticket.status:
        source = ticket.status
        entries += core.apply_changes(ticket, actor, {"status": target}, action="transition",
                                      at=at)
        ticket.is_open = WORKFLOW.is_open(target)
        hooks.append(("servicedesk_ticket_transitioned",
                      {"ticket": ticket, "actor": actor, "from_status": source, "to_status": target}))
    return entries


def _default_group(category, subcategory) -> Group | None:
    for source in (subcategory, category):
        if source is not None and source.default_group is not None:
            return source.default_group
    # Otherwise the configured triage group, else the first first-line group.
    name = current_app.config.get("SERVICEDESK_DEFAULT_GROUP")
    query = select(Group).where(Group.name == name) if name else (
        select(Group).where(Group.support_line == 1).order_by(Group.id).limit(1))
    return db.session.scalars(query).first()


def _categories(data: dict, category=None, subcategory=None):
    """Resolve category_id / subcategory_id from ``data`` against the current pair; a
    subcategory alone implies its category."""
    return core.resolve_categories(data, category, subcategory, infer_category=True)


# --- writing -------------------------------------------------------------------------


def create_incident(actor: User, data: dict, channel: str) -> Incident:
    core.check_writable(actor, data.keys(), CREATE_FIELDS, WHY_NOT)
    # Everything up to the number only reads (users, categories, priority matrix,
    # groups): on SQLite it runs before the write lock is taken, which the number
    # allocation then takes, so writers hold that one lock ~20% less long (see
    # extensions.read_only_transaction; bench/api_load.py measures creation).
    with read_only_transaction():
        incident = _new_incident(actor, data, channel)
        cis = cmdb_links.resolve(data["affected_cis"]) if data.get("affected_cis") else []
    core.add_numbered(incident, actor, PREFIX)
    if incident.assignee is not None:
        core.record(incident, actor, "assigned", "assignee", None, incident.assignee)
    cmdb_links.set_created_cis(incident, actor, cis)
    core.commit_and_notify([("servicedesk_ticket_created", {"ticket": incident, "actor": actor})])
    return incident


def _new_incident(actor: User, data: dict, channel: str) -> Incident:
    """The incident ``data`` asks for, resolved and assigned; not numbered nor saved yet."""
    requester = actor
    if data.get("requester"):
        requester = core.find_user(data["requester"], "requester")
    impact = data.get("impact") or "medium"
    urgency = data.get("urgency") or "medium"
    category, subcategory = _categories(data)
    now = utcnow()
    incident = Incident(
        title=data["title"],
        description=data.get("description") or "",
        impact=impact,
        urgency=urgency,
        priority=core.compute_priority(impact, urgency),
        category=category,
        subcategory=subcategory,
        service_id=data.get("service_id"),
        ci_id=data.get("ci_id"),
        requester=requester,
        channel=data.get("channel") or channel,
        major=bool(data.get("major", False)),
        status=WORKFLOW.initial,
        is_open=True,
        created_at=now,
        updated_at=now,
    )
    if "group" not in data:
        group = _default_group(category, subcategory)
        if group is not None:
            incident.group = group
            incident.support_line = group.support_line
    changes = _assignment(incident, data)
    for attr, value in changes.items():
        setattr(incident, attr, value)
    incident.is_open = WORKFLOW.is_open(incident.status)
    return incident


def update_incident(actor: User, number: str, data: dict) -> Incident:
    data = dict(data)
    version = data.pop("version", None)
    incident = get_incident(actor, number)
    core.check_writable(actor, data.keys(), UPDATE_FIELDS, WHY_NOT)
    if WORKFLOW.is_final(incident.status):
        raise Conflict(_("%(number)s is %(status)s; it can no longer be edited.",
                         number=number, status=incident.status),
                       code="ticket_closed")
    if not actor.is_staff and incident.status != "new":
        raise Forbidden(
            _("IT has started on this incident; add a reply to tell them what changed."),
            fields={f: [_("Editable by you only until IT picks the incident up.")] for f in data},
            code="forbidden_fields",
        )
    core.check_version(incident, version)
    changes = {k: data[k] for k in ("title", "description", "service_id", "ci_id") if k in data}
    if "major" in data:
        changes["major"] = bool(data["major"])
    if "impact" in data or "urgency" in data:
        impact = data.get("impact") or incident.impact
        urgency = data.get("urgency") or incident.urgency
        changes.update(impact=impact, urgency=urgency,
                       priority=core.compute_priority(impact, urgency))
    if "category_id" in data or "subcategory_id" in data:
        category, subcategory = _categories(data, incident.category, incident.subcategory)
        changes.update(category=category, subcategory=subcategory)
    if "group" in data or "assignee" in data:
        changes.update(_assignment(incident, data))
    cis = cmdb_links.resolve(data["affected_cis"]) if "affected_cis" in data else None
    hooks = []
    entries = _apply_with_status(incident, actor, changes, "updated", hooks)
    if cis is not None:
        entry = cmdb_links.set_affected_cis(incident, actor, cis, "updated")
        entries += [entry] if entry is not None else []
    if entries:
        hooks.insert(0, ("servicedesk_ticket_updated",
                         {"ticket": incident, "actor": actor, "changes": entries}))
    core.commit_and_notify(hooks)
    return incident


def transition_incident(actor: User, number: str, data: dict) -> Incident:
    incident = get_incident(actor, number)
    if data.get("version") is not None:
        core.check_version(incident, data["version"])
    target = data["to"]
    step = WORKFLOW.check(incident.status, target, core.role_of(actor))
    now = utcnow()
    extra = {}
    if incident.status == "pending" and target != "pending":
        extra["pending_reason"] = None
    if target == "pending":
        extra["pending_reason"] = data.get("pending_reason")
    if target == "resolved":
        extra.update(resolution_code=data.get("resolution_code"),
                     resolution_notes=data.get("resolution_notes"), resolved_at=now)
    if target in WORKFLOW.final_states:
        extra["closed_at"] = now
    if step.reopen:
        if actor is not None and not actor.is_staff:
            window = timedelta(days=current_app.config["SERVICEDESK_REOPEN_WINDOW_DAYS"])
            if incident.resolved_at is not None and now - incident.resolved_at > window:
                raise Conflict(
                    _("%(number)s was resolved more than %(days)s days ago and can no "
                      "longer be reopened; please raise a new incident.",
                      number=number, days=window.days),
                    fields={"to": [_("The reopen window has passed.")]},
                    code="reopen_window_passed",
                )
        extra.update(reopen_count=incident.reopen_count + 1, resolved_at=None,
                     resolution_code=None, resolution_notes=None)
    hooks = []
    if target == "assigned":
        assignment = _assignment(incident, {k: data[k] for k in ("group", "assignee") if k in data})
        assignment.pop("status", None)
        extra.update(assignment)
    source = incident.status
    _step, _source, entries = core.transition(incident, actor, WORKFLOW, target, data, extra,
                                              at=now)
    hooks.append(("servicedesk_ticket_transitioned",
                  {"ticket": incident, "actor": actor, "from_status": source, "to_status": target}))
    core.commit_and_notify(hooks)
    return incident


def comment_incident(actor: User, number: str, body: str, public: bool = True):
    incident = get_incident(actor, number)
    comment = core.add_comment(incident, actor, body, public, WORKFLOW)
    hooks = [("servicedesk_ticket_commented", {"ticket": incident, "comment": comment, "actor": actor})]
    # The requester answered what we were waiting for: the ball is back with IT.
    if (public and actor.id == incident.requester_id and incident.status == "pending"
            and incident.pending_reason == "awaiting_requester"):
        _apply_with_status(incident, actor, {"status": "in_progress", "pending_reason": None},
                           "requester_replied", hooks)
    core.commit_and_notify(hooks)
    return comment


def escalate_incident(actor: User, number: str, data: dict) -> Incident:
    """Functional escalation: hand the incident to a group of the next support line."""
    if not actor.is_staff:
        raise Forbidden(_("Only IT staff escalate incidents."))
    incident = get_incident(actor, number)
    if data.get("version") is not None:
        core.check_version(incident, data["version"])
    if not WORKFLOW.is_open(incident.status):
        raise Conflict(_("%(number)s is %(status)s; only open incidents are escalated.",
                         number=number, status=incident.status),
                       code="ticket_not_open")
    line = (incident.support_line or 1) + 1
    if line > 3:
        raise Conflict(_("%(number)s is already with the last support line (L3).",
                         number=number),
                       code="no_next_line")
    if data.get("group"):
        group = core.find_group(data["group"])
        if group.support_line != line:
            raise ValidationError(
                _("%(group)s is an L%(group_line)s group; escalation goes to L%(line)s.",
                  group=group.name, group_line=group.support_line, line=line),
                fields={"group": [_("Must be a group of support line %(line)s.", line=line)]},
            )
    else:
        group = db.session.scalars(
            select(Group).where(Group.support_line == line).order_by(Group.name).limit(1)
        ).first()
        if group is None:
            raise Conflict(_("There is no L%(line)s group to escalate to.", line=line),
                           code="no_next_line")
    changes = {"group": group, "support_line": line, "assignee": None}
    if incident.status == "assigned":
        changes["status"] = "new"
    hooks = []
    entries = _apply_with_status(incident, actor, changes, "escalated", hooks)
    incident.escalation_count += 1
    if data.get("note"):
        core.add_comment(incident, actor, data["note"], False, WORKFLOW)
    hooks.insert(0, ("servicedesk_ticket_updated",
                     {"ticket": incident, "actor": actor, "changes": entries}))
    core.commit_and_notify(hooks)
    return incident


def close_if_resolved_before(number: str, cutoff: datetime) -> bool:
    """Close one resolved incident for the auto-close job; idempotent, safe to race."""
    incident = db.session.scalars(select(Incident).where(Incident.number == number)).one_or_none()
    if incident is None or incident.status != "resolved" or incident.resolved_at is None \
            or incident.resolved_at > cutoff:
        db.session.rollback()
        return False
    source = incident.status
    core.transition(incident, None, WORKFLOW, "closed", {}, {"closed_at": utcnow()})
    core.commit_and_notify([("servicedesk_ticket_transitioned",
                             {"ticket": incident, "actor": None,
                              "from_status": source, "to_status": "closed"})])
    return True
