"""Operations every ticket kind shares. Kind packages build their services on these.

Nothing here commits except ``commit_and_notify``; the kind's service function calls
it once, after all of its changes, so a change, its audit entries and (later) its
outbox rows share one transaction, and plugin hooks see only committed data.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import exists, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import Group, User, group_members
from servicedesk.plugins import call_hook, call_hooks_in_transaction
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import (
    LEVELS,
    AuditEntry,
    Category,
    Comment,
    PriorityRule,
    Ticket,
)
from servicedesk.tickets.workflow import Workflow
from servicedesk.types import utcnow

# The matrix a fresh install starts with (also seeded by the first migration).
DEFAULT_PRIORITY_MATRIX = {
    ("high", "high"): 1,
    ("high", "medium"): 2,
    ("medium", "high"): 2,
    ("high", "low"): 3,
    ("medium", "medium"): 3,
    ("low", "high"): 3,
    ("medium", "low"): 4,
    ("low", "medium"): 4,
    ("low", "low"): 5,
}

SYSTEM_ROLE = "system"


def role_of(actor: User | None) -> str:
    return SYSTEM_ROLE if actor is None else actor.role


# --- numbering and priority ----------------------------------------------------------


def allocate_number(prefix: str) -> str:
    """Hand out the next number for ``prefix`` (``INC000042``); never the same twice.

    One upsert on a counter row: concurrent creators queue on its row lock (SQLite:
    on the write lock every writer already holds), so no two tickets share a number,
    and since tickets are never deleted a number is never handed out again.
    """
    value = driver_sql(
        "INSERT INTO ticket_counters (prefix, value) VALUES (?, 1) ON CONFLICT (prefix) "
        "DO UPDATE SET value = ticket_counters.value + 1 RETURNING value", (prefix,)
    ).scalar_one()
    return f"{prefix}{value:06d}"


def driver_sql(sql: str, params: tuple = ()):
    """Run plain SQL (``?`` placeholders) on the session's connection, in its transaction.

    For the few statements every ticket creation runs: going through the ORM (and even
    Core's statement cache) cost ~0.25 ms each, six times the statement itself
    (bench/api_load.py). The SQL must mean the same on SQLite and PostgreSQL; the
    session does not autoflush for it.
    """
    connection = db.session.connection()
    if connection.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, params)


def compute_priority(impact: str, urgency: str) -> int:
    priority = driver_sql(
        "SELECT priority FROM priority_matrix WHERE impact = ? AND urgency = ?",
        (impact, urgency),
    ).scalar_one_or_none()
    if priority is not None:
        return priority
    return DEFAULT_PRIORITY_MATRIX[(impact, urgency)]


def priority_matrix() -> dict[tuple[str, str], int]:
    matrix = dict(DEFAULT_PRIORITY_MATRIX)
    for rule in db.session.scalars(select(PriorityRule)):
        matrix[(rule.impact, rule.urgency)] = rule.priority
    return matrix


def set_priority_matrix(actor: User, cells: dict[tuple[str, str], int]) -> dict:
    if actor.role != "admin":
        raise Forbidden(_("Only admins may change the priority matrix."))
    errors = {}
    for (impact, urgency), priority in cells.items():
        key = f"{impact}/{urgency}"
        if impact not in LEVELS or urgency not in LEVELS:
            errors[key] = [_("Impact and urgency must be one of: %(levels)s.",
                              levels=", ".join(LEVELS))]
        elif not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 5:
            errors[key] = [_("Priority must be a whole number from 1 to 5.")]
    if errors:
        raise ValidationError(_("The priority matrix has invalid cells."), fields=errors)
    for (impact, urgency), priority in cells.items():
        rule = db.session.get(PriorityRule, (impact, urgency))
        if rule is None:
            db.session.add(PriorityRule(impact=impact, urgency=urgency, priority=priority))
        else:
            rule.priority = priority
    db.session.commit()
    return priority_matrix()


# --- lookups -------------------------------------------------------------------------


def get_visible_ticket(actor: User, model, number: str):
    """The ticket ``number`` of kind ``model`` if ``actor`` may see it, else NotFound."""
    ticket = db.session.scalars(
        select(model).where(model.number == number, visible_tickets_clause(actor, model))
    ).one_or_none()
    if ticket is None:
        raise NotFound(_("No %(kind)s %(number)s.", kind=model.__name__.lower(), number=number))
    return ticket


def check_version(ticket: Ticket, version) -> None:
    if version is None:
        raise ValidationError(
            _("The version you last read is required."),
            fields={"version": [_("Missing data for required field.")]},
        )
    if version != ticket.version:
        raise Conflict(
            _("%(number)s was changed by someone else (version %(current)s, you sent "
              "%(sent)s); reload it and apply your change again.",
              number=ticket.number, current=ticket.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=ticket.version)]},
            code="stale_version",
        )


def find_user(username: str, field: str, staff: bool = False) -> User:
    user = db.session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None or not user.active:
        raise ValidationError(_("No active user %(username)s.", username=repr(username)),
                              fields={field: [_("Unknown user.")]})
    if staff and not user.is_staff:
        raise ValidationError(
            _("%(username)s is not IT staff.", username=username),
            fields={field: [_("Must be an agent or manager.")]},
        )
    return user


def find_group(name: str, field: str = "group") -> Group:
    group = db.session.scalars(select(Group).where(Group.name == name)).one_or_none()
    if group is None:
        raise ValidationError(_("No group %(name)s.", name=repr(name)),
                              fields={field: [_("Unknown group.")]})
    return group


def find_category(category_id: int, field: str, parent: Category | None = None) -> Category:
    category = db.session.get(Category, category_id)
    if category is None or not category.active:
        raise ValidationError(_("Unknown category."), fields={field: [_("Unknown category.")]})
    if parent is None and category.parent_id is not None:
        raise ValidationError(
            _("That is a subcategory."), fields={field: [_("Choose a top-level category.")]}
        )
    if parent is not None and category.parent_id != parent.id:
        raise ValidationError(
            _("Subcategory does not belong to the category."),
            fields={field: [_("Not a subcategory of %(parent)s.", parent=parent.name)]},
        )
    return category


def list_filters(model, actor: User, filters: dict) -> list:
    """WHERE clauses of the filters every kind's list has: ``status`` (list), ``open``
    (bool), ``group`` (name) and ``assignee`` (username, "me" or "none"). An unknown
    group or user is a 422 naming the filter."""
    where = []
    if filters.get("status"):
        where.append(model.status.in_(filters["status"]))
    if "open" in filters:
        where.append(model.is_open == (true() if filters["open"] else False))
    if filters.get("group"):
        where.append(model.group_id == find_group(filters["group"]).id)
    if filters.get("assignee"):
        who = filters["assignee"]
        if who == "none":
            where.append(model.assignee_id.is_(None))
        else:
            user = actor if who == "me" else find_user(who, "assignee")
            where.append(model.assignee_id == user.id)
    return where


def is_member(user: User, group: Group) -> bool:
    """Whether ``user`` is a member of ``group``."""
    return db.session.scalar(select(exists().where(
        group_members.c.user_id == user.id, group_members.c.group_id == group.id)))


def requested_group(ticket: Ticket, data: dict, changes: dict) -> Group | None:
    """The group ``data`` asks for (``group``: a name or empty), else the ticket's own;
    a group asked for goes into ``changes`` with its support line."""
    if "group" not in data:
        return ticket.group
    group = find_group(data["group"]) if data["group"] else None
    changes.update(group=group, support_line=group.support_line if group else None)
    return group


def requested_assignee(ticket: Ticket, data: dict) -> User | None:
    """The IT staff member ``data`` asks for (``assignee``: a username or empty), else
    the ticket's own assignee."""
    if "assignee" not in data:
        return ticket.assignee
    return find_user(data["assignee"], "assignee", staff=True) if data["assignee"] else None


def check_member(assignee: User | None, group: Group | None) -> None:
    """A 422 naming ``assignee`` when both are set and it is not a member of ``group``."""
    if assignee is not None and group is not None and not is_member(assignee, group):
        raise ValidationError(
            _("%(username)s is not a member of %(group)s.",
              username=assignee.username, group=group.name),
            fields={"assignee": [_("Must be a member of the group %(group)s.",
                                   group=group.name)]})


def resolve_categories(data: dict, category: Category | None = None,
                       subcategory: Category | None = None, *, infer_category: bool = False):
    """The (category, subcategory) pair ``data``'s ``category_id`` / ``subcategory_id``
    make of the current pair: another category drops a subcategory not under it; a
    subcategory without a category is a 422, unless ``infer_category`` (its parent)."""
    if "category_id" in data:
        category = (find_category(data["category_id"], "category_id")
                    if data["category_id"] else None)
        if subcategory is not None and (category is None or subcategory.parent_id != category.id):
            subcategory = None
    if "subcategory_id" in data:
        subcategory = None
        if data["subcategory_id"]:
            if category is None and infer_category:
                sub = db.session.get(Category, data["subcategory_id"])
                category = sub.parent if sub is not None else None
                if category is None:
                    raise ValidationError(_("Unknown subcategory."),
                                          fields={"subcategory_id": [_("Unknown subcategory.")]})
            if category is None:
                raise ValidationError(
                    _("Choose a category first."),
                    fields={"subcategory_id": [_("A subcategory needs its category.")]})
            subcategory = find_category(data["subcategory_id"], "subcategory_id",
                                        parent=category)
    return category, subcategory


def refuse_probing_filters(actor: User, filters: dict, message: str) -> None:
    """A requester's list filters may name only themselves (403 naming the filters;
    ``message`` says so in the kind's words).

    Looking a name up answers "unknown user" or "unknown group" (422) for names that
    do not exist; to someone who sees only their own tickets these filters do nothing
    else, so they would only serve to find out which colleagues and groups exist. One
    answer, whatever the name.
    """
    if actor.is_staff:
        return
    refused = ["group"] if filters.get("group") else []
    if filters.get("assignee") not in (None, "", "me", "none"):
        refused.append("assignee")
    if filters.get("requester") not in (None, "", "me", actor.username):
        refused.append("requester")
    if refused:
        raise Forbidden(
            message,
            fields={name: [_("Only IT staff filter by other people or groups.")]
                    for name in refused},
            code="forbidden_fields",
        )


# --- writable fields -----------------------------------------------------------------


def check_writable(actor: User, fields, allowed: dict[str, set[str]], why: dict | None = None):
    """Refuse (403, naming each field) fields the actor's role may not write."""
    permitted = allowed.get(actor.role, set())
    refused = sorted(set(fields) - permitted)
    if refused:
        why = why or {}
        raise Forbidden(
            _("Your role (%(role)s) may not set: %(fields)s.",
              role=actor.role, fields=", ".join(refused)),
            # ``why`` holds literals marked for extraction (N_); translated here.
            fields={f: [_(why[f]) if f in why else
                        _("Not writable by a %(role)s.", role=actor.role)] for f in refused},
            code="forbidden_fields",
        )


# --- audit ---------------------------------------------------------------------------


def _display(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, User):
        return value.username
    if isinstance(value, Group):
        return value.name
    if isinstance(value, Category):
        return value.name
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def add_numbered(ticket: Ticket, actor: User | None, prefix: str,
                 at: datetime | None = None) -> None:
    """Give a new ``ticket`` its number, add it (flushed: it has its id) and audit its
    creation."""
    ticket.number = allocate_number(prefix)
    db.session.add(ticket)
    db.session.flush()
    record(ticket, actor, "created", "number", None, ticket.number, at)


def record(ticket: Ticket, actor: User | None, action: str, field: str | None = None,
           old=None, new=None, at: datetime | None = None) -> AuditEntry:
    """Audit one change. Entries of one change share ``at`` (a move to pending and its
    reason are one instant: SLA clocks are computed from these entries)."""
    entry = AuditEntry(
        ticket_id=ticket.id,
        actor_id=actor.id if actor is not None else None,
        action=action,
        field=field,
        old_value=_display(old),
        new_value=_display(new),
        at=at or utcnow(),
    )
    db.session.add(entry)
    return entry


def apply_changes(ticket: Ticket, actor: User | None, changes: dict, action: str = "updated",
                  at: datetime | None = None):
    """Set attributes on ``ticket``, auditing each one that really changes.

    ``changes`` maps attribute names to new values; relationship attributes
    (``assignee``, ``group``, ``category``...) are audited by their readable name.
    """
    entries = []
    at = at or utcnow()
    for attr, new in changes.items():
        old = getattr(ticket, attr)
        if old == new:
            continue
        setattr(ticket, attr, new)
        entries.append(record(ticket, actor, action, attr, old, new, at))
    return entries


# --- workflow ------------------------------------------------------------------------


def transition(ticket: Ticket, actor: User | None, workflow: Workflow, target: str,
               data: dict, extra: dict | None = None, at: datetime | None = None):
    """Move ``ticket`` to ``target`` under ``workflow``; returns (transition, entries).

    Checks the edge and the actor's role, that every field the edge requires is in
    ``data``, then sets status (and ``is_open``) plus ``extra`` attributes, audited.
    """
    step = workflow.check(ticket.status, target, role_of(actor))
    missing = [f for f in step.requires if data.get(f) in (None, "")]
    if missing:
        raise ValidationError(
            _("Moving to %(target)s needs: %(fields)s.", target=target, fields=", ".join(missing)),
            fields={f: [_("Required to move to %(target)s.", target=target)] for f in missing},
        )
    source = ticket.status
    at = at or utcnow()
    entries = apply_changes(ticket, actor, {"status": target}, action="transition", at=at)
    ticket.is_open = workflow.is_open(target)
    entries += apply_changes(ticket, actor, extra or {}, action="transition", at=at)
    return step, source, entries


# --- comments ------------------------------------------------------------------------


def add_comment(ticket: Ticket, actor: User, body: str, public: bool,
                workflow: Workflow) -> Comment:
    body = (body or "").strip()
    if not body:
        raise ValidationError(_("A comment needs text."),
                              fields={"body": [_("Must not be empty.")]})
    if not public and not actor.is_staff:
        raise Forbidden(
            _("Only IT staff may write internal notes."),
            fields={"public": [_("Requesters can only write public replies.")]},
            code="forbidden_fields",
        )
    if workflow.is_final(ticket.status):
        raise Conflict(
            _("%(number)s is %(status)s; it takes no more comments.",
              number=ticket.number, status=ticket.status),
            fields={"body": [_("The ticket is %(status)s.", status=ticket.status)]},
            code="ticket_closed",
        )
    comment = Comment(ticket_id=ticket.id, author=actor, body=body, public=public,
                      created_at=utcnow())
    db.session.add(comment)
    record(ticket, actor, "commented" if public else "internal_note")
    if public and actor.is_staff and actor.id != ticket.requester_id and ticket.first_response_at is None:
        ticket.first_response_at = comment.created_at
    return comment


def list_comments(ticket: Ticket, actor: User) -> list[Comment]:
    query = select(Comment).where(Comment.ticket_id == ticket.id).order_by(Comment.id)
    if not actor.is_staff:
        query = query.where(Comment.public.is_(True))
    return list(db.session.scalars(query))


# Audit actions only IT staff read; a kind adds its own (problems: links to incidents).
STAFF_ONLY_ACTIONS = {"internal_note"}


def list_history(ticket: Ticket, actor: User) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.ticket_id == ticket.id).order_by(AuditEntry.id)
    if not actor.is_staff:
        query = query.where(AuditEntry.action.not_in(sorted(STAFF_ONLY_ACTIONS)))
    return list(db.session.scalars(query))


# --- commit --------------------------------------------------------------------------


def commit_and_notify(hooks: list[tuple[str, dict]]) -> None:
    """Commit the unit of work, then tell the plugins. Conflicts become 409s.

    Right before the commit, in the same transaction, for every ticket the hooks name
    (each hook carries the changed ``ticket`` and the ``actor``): its SLA clocks are
    recomputed from its history, a satisfaction survey is offered on a resolution, the
    notification rules queue their messages, and plugins that only add rows
    (``SERVICEDESK_INLINE_HOOKS``: webhook, chat) add theirs. Every kind gets all of
    that without doing anything. The other plugins are told after the commit.
    """
    from servicedesk.sla.service import refresh_changed_tickets
    from servicedesk.csat.service import survey_resolutions
    from servicedesk.notify.rules import notify_hooks

    refresh_changed_tickets(hooks)
    survey_resolutions(hooks)  # a satisfaction survey (and its e-mail) per resolution
    try:
        notify_hooks(hooks)  # who is told what: the notification rules (notify.rules)
        for name, kwargs in hooks:  # plugins that only write rows: in this transaction
            call_hooks_in_transaction(name, **kwargs)
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(
            _("Someone else changed this ticket at the same moment; reload and retry."),
            fields={"version": [_("Stale.")]},
            code="stale_version",
        ) from None
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(_("The change conflicts with existing data."), code="integrity") from exc
    for name, kwargs in hooks:
        call_hook(name, _after_rows=True, **kwargs)
