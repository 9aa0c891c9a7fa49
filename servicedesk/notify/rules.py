"""Notification rules as data: which event tells which recipient, through which backend.

A rule is (event, recipient kind, backend) plus ``enabled``, ``mutable`` (may users
mute it?) and ``include_actor`` (is the person who made the change told too? only the
confirmation of a new ticket does that). ``notify_event`` resolves the enabled rules of
an event into users, drops the actor and what users muted (``notify.preferences``),
and queues one outbox row per (user, backend) in the caller's transaction.

The ticket lifecycle of every kind is rule-driven through ``notify_hooks``, which
``tickets.service.commit_and_notify`` calls right before its commit: ``created``,
``assigned``, ``commented`` (public replies), ``resolved``, ``closed``, ``reopened``
and any other ``transitioned``; ``approval_requested`` through ``notify_event`` from
the approvals service, which names the approvers. SLA warnings/breaches (per-policy
escalation steps), OLA hand-over warnings and satisfaction surveys keep queueing
directly: their recipients are already data of their own (escalation steps, group
managers, the requester) and each fires once per unique row.

Rules are read once per process and kept ``SERVICEDESK_NOTIFY_RULES_TTL`` seconds
(default 30): a ticket change costs no statement for them. An admin's change drops
this process's copy at once; other processes see it within the TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import ForeignKey, String, UniqueConstraint, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User, group_members
from servicedesk.tickets.models import AuditEntry, Ticket

# Rule-driven events (their templates are notify/templates/en/<event>.*).
EVENTS = {
    "ticket.created": lazy_gettext("A ticket was raised"),
    "ticket.assigned": lazy_gettext("A ticket was assigned"),
    "ticket.commented": lazy_gettext("A public reply was added"),
    "ticket.resolved": lazy_gettext("A ticket was resolved"),
    "ticket.closed": lazy_gettext("A ticket was closed"),
    "ticket.reopened": lazy_gettext("A ticket was reopened"),
    "ticket.transitioned": lazy_gettext("Any other status change"),
    "approval_requested": lazy_gettext("An approval is requested"),
}
KINDS = {
    "requester": lazy_gettext("Requester"),
    "assignee": lazy_gettext("Assignee"),
    "group": lazy_gettext("Members of the ticket's group"),
    "manager": lazy_gettext("Manager of the ticket's group"),
    "watchers": lazy_gettext("Watchers"),
    "approver": lazy_gettext("Approvers (named by the approval)"),
}
# (event, recipient kind, backend, enabled, mutable, include actor): a fresh install's
# rules, as migration 0016 seeds them.
DEFAULT_RULES = (
    ("ticket.created", "requester", "email", True, False, True),  # the confirmation
    ("ticket.created", "group", "email", False, True, False),
    ("ticket.assigned", "assignee", "email", True, True, False),
    ("ticket.commented", "requester", "email", True, True, False),
    ("ticket.commented", "assignee", "email", True, True, False),
    ("ticket.commented", "watchers", "email", True, True, False),
    ("ticket.resolved", "requester", "email", True, True, False),
    ("ticket.resolved", "watchers", "email", True, True, False),
    ("ticket.closed", "requester", "email", False, True, False),
    ("ticket.reopened", "assignee", "email", True, True, False),
    ("ticket.transitioned", "watchers", "email", False, True, False),
    ("approval_requested", "approver", "email", True, False, False),
)
DEFAULT_TTL = 30.0
_CACHE_KEY = "notify_rules"
_AUDIT_KEY = "servicedesk_new_audit_entries"


class NotificationRule(db.Model):
    __tablename__ = "notification_rules"
    __table_args__ = (UniqueConstraint("event", "recipient_kind", "backend"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    recipient_kind: Mapped[str] = mapped_column(String(32))
    backend: Mapped[str] = mapped_column(String(32), default="email")
    enabled: Mapped[bool] = mapped_column(default=True)
    mutable: Mapped[bool] = mapped_column(default=True)
    include_actor: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<NotificationRule {self.event} {self.recipient_kind} {self.backend}>"


class TicketWatcher(db.Model):
    """Someone who asked to be told about a ticket they are not otherwise part of."""

    __tablename__ = "ticket_watchers"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


@dataclass(frozen=True)
class Rule:
    """An enabled rule as the cache holds it (no ORM object outlives its session)."""

    event: str
    kind: str
    backend: str
    mutable: bool
    include_actor: bool


# --- the per-process cache -------------------------------------------------------------


def enabled_rules() -> dict[str, tuple[Rule, ...]]:
    """Enabled rules by event, read at most once per TTL per process."""
    cached = _store().get(_CACHE_KEY)
    now = time.monotonic()
    if cached is not None and now < cached[0]:
        return cached[1]
    return warm(now)


def warm(now: float | None = None) -> dict[str, tuple[Rule, ...]]:
    """(Re)load the rules now: one statement."""
    now = time.monotonic() if now is None else now
    with db.session.no_autoflush:
        rows = db.session.execute(
            select(NotificationRule.event, NotificationRule.recipient_kind,
                   NotificationRule.backend, NotificationRule.mutable,
                   NotificationRule.include_actor)
            .where(NotificationRule.enabled.is_(True))
            .order_by(NotificationRule.id)).all()
    by_event: dict[str, list[Rule]] = {}
    for row in rows:
        by_event.setdefault(row.event, []).append(Rule(*row))
    rules = {name: tuple(items) for name, items in by_event.items()}
    ttl = current_app.config.get("SERVICEDESK_NOTIFY_RULES_TTL", DEFAULT_TTL)
    _store()[_CACHE_KEY] = (now + float(ttl), rules)
    return rules


def _store() -> dict:
    # Kept with the other per-process reference data, so refdata.forget() (tests empty
    # the database between tests) drops it too.
    return current_app.extensions["servicedesk"].setdefault("refdata", {})


def invalidate() -> None:
    _store().pop(_CACHE_KEY, None)


# --- resolving and queueing --------------------------------------------------------------


def _group_members(ticket: Ticket) -> list[User]:
    if ticket.group_id is None:
        return []
    return list(db.session.scalars(
        select(User).join(group_members, group_members.c.user_id == User.id)
        .where(group_members.c.group_id == ticket.group_id).order_by(User.id)))


def _watchers(ticket: Ticket) -> list[User]:
    return list(db.session.scalars(
        select(User).join(TicketWatcher, TicketWatcher.user_id == User.id)
        .where(TicketWatcher.ticket_id == ticket.id).order_by(User.id)))


def _users_of(kind: str, ticket: Ticket, given: dict | None) -> list[User]:
    if given is not None and kind in given:
        return [u for u in given[kind] if u is not None]
    if kind == "requester":
        return [ticket.requester] if ticket.requester is not None else []
    if kind == "assignee":
        return [ticket.assignee] if ticket.assignee is not None else []
    if kind == "group":
        return _group_members(ticket)
    if kind == "manager":
        group = ticket.group
        return [group.manager] if group is not None and group.manager is not None else []
    if kind == "watchers":
        return _watchers(ticket)
    return []  # e.g. "approver": only the caller knows them


# A message that would say what another one queued in the same transaction already
# says to the same person is not sent: the satisfaction survey tells the requester
# their ticket was resolved (with the resolution), so they get no separate notice.
SUPERSEDED_BY = {"ticket.resolved": frozenset({"ticket.survey"})}


def _superseded(event_name: str, ticket: Ticket) -> set[int]:
    """Ids of the users already sent, in this transaction, what supersedes the event."""
    from servicedesk.notify.service import queued_in_transaction

    covering = SUPERSEDED_BY.get(event_name)
    if not covering:
        return set()
    return {row.recipient_id for row in queued_in_transaction()
            if row.event in covering and row.ticket_id == ticket.id}


def notify_event(event_name: str, ticket: Ticket, *, actor: User | None,
                 context: dict | None = None, recipients: dict[str, list[User]] | None = None,
                 dedupe_suffix: str, fresh: bool = False) -> list:
    """Queue ``event_name`` about ``ticket`` as its enabled rules say; returns the rows.

    ``recipients`` names users for kinds the ticket does not know (``approver``) or
    overrides a kind. ``dedupe_suffix`` identifies the change (a comment's or audit
    entry's id): the dedupe key is ``event:ticket:suffix:user:backend``, so queueing
    the same change twice sends once. ``fresh``: the suffix names a row of this very
    transaction, so no stored row can hold the key (saves a lookup per message).
    """
    from servicedesk.notify.preferences import muted_for
    from servicedesk.notify.service import queue_notification

    rules = enabled_rules().get(event_name, ())
    if not rules:
        return []
    targets: dict[tuple[int, str], list] = {}  # (user id, backend) -> [user, mutable]
    with db.session.no_autoflush:
        for rule in rules:
            for user in _users_of(rule.kind, ticket, recipients):
                if not user.active:
                    continue
                if actor is not None and user.id == actor.id and not rule.include_actor:
                    continue
                key = (user.id, rule.backend)
                if key in targets:
                    targets[key][1] = targets[key][1] and rule.mutable  # a locked rule wins
                else:
                    targets[key] = [user, rule.mutable]
        asking = {uid for (uid, _b), (_u, mutable) in targets.items() if mutable}
        muted = muted_for(event_name, asking) if asking else set()
    queued = []
    values = {**(context or {}), "actor": actor}
    told = _superseded(event_name, ticket)
    for (uid, backend), (user, mutable) in targets.items():
        if mutable and ((uid, backend) in muted or (uid, "*", backend) in muted):
            continue
        if uid in told and backend == "email":
            continue
        row = queue_notification(
            event_name, user, ticket=ticket, context=values, backend=backend,
            dedupe_key=f"{event_name}:{ticket.id}:{dedupe_suffix}:{uid}:{backend}",
            fresh=fresh)
        if row is not None:
            queued.append(row)
    return queued


def _transition_event(ticket: Ticket, source: str | None, target: str | None) -> str:
    if target == "resolved":
        return "ticket.resolved"
    if target == "closed":
        return "ticket.closed"
    if source in ("resolved", "closed") and ticket.is_open:
        return "ticket.reopened"
    return "ticket.transitioned"


def notify_hooks(hooks: list[tuple[str, dict]]) -> None:
    """Queue the rule-driven notifications of one unit of work (commit_and_notify's hooks).

    Runs before the commit, in its transaction. Flushes (only when a rule applies) so
    each message can name the comment or audit entry it is about in its dedupe key.
    """
    rules = enabled_rules()
    if not rules or not hooks:
        return
    planned: list[tuple[str, Ticket, User | None, dict, object]] = []
    tickets: dict[int, tuple[Ticket, User | None]] = {}
    for name, kwargs in hooks:
        ticket, actor = kwargs.get("ticket"), kwargs.get("actor")
        if ticket is None:
            continue
        tickets.setdefault(id(ticket), (ticket, actor))
        if name == "servicedesk_ticket_created":
            planned.append(("ticket.created", ticket, actor, {}, "new"))
        elif name == "servicedesk_ticket_commented":
            comment = kwargs.get("comment")
            if comment is not None and comment.public:
                planned.append(("ticket.commented", ticket, actor, {"comment": comment}, comment))
        elif name == "servicedesk_ticket_transitioned":
            source, target = kwargs.get("from_status"), kwargs.get("to_status")
            planned.append((_transition_event(ticket, source, target), ticket, actor,
                            {"from_status": source, "to_status": target}, ("status", target)))
    wanted = {p[0] for p in planned} | {"ticket.assigned"}
    if not wanted & rules.keys():
        return
    db.session.flush()  # ids for the dedupe keys; the commit would run the same statements
    entries = db.session.info.get(_AUDIT_KEY, [])
    for ticket, actor in tickets.values():
        for entry in entries:
            if entry.ticket_id == ticket.id and entry.field == "assignee" and entry.new_value:
                planned.append(("ticket.assigned", ticket, actor, {}, f"a{entry.id}"))
    for event_name, ticket, actor, context, ref in planned:
        if event_name not in rules:
            continue
        if ref == "new":
            suffix = "new"
        elif isinstance(ref, tuple):  # the audit entry of this status change
            ids = [e.id for e in entries if e.ticket_id == ticket.id and e.field == "status"
                   and e.new_value == ref[1]]
            if not ids:
                continue
            suffix = f"s{max(ids)}"
        elif isinstance(ref, str):
            suffix = ref
        else:
            suffix = f"c{ref.id}"
        notify_event(event_name, ticket, actor=actor, context=context,
                     dedupe_suffix=suffix, fresh=True)


# The audit entries written in this transaction, so notify_hooks can see assignments
# and status changes whichever service made them (cleared at commit and rollback).
@event.listens_for(Session, "after_flush")
def _collect_audit(session, _flush_context):
    for obj in session.new:
        if isinstance(obj, AuditEntry):
            session.info.setdefault(_AUDIT_KEY, []).append(obj)


@event.listens_for(Session, "after_transaction_end")
def _forget_audit(session, transaction):
    if transaction.parent is None:
        session.info.pop(_AUDIT_KEY, None)


# --- administration -----------------------------------------------------------------------


def _require_admin(actor: User | None) -> None:
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins may manage notification rules."))


def known_backends() -> list[str]:
    from servicedesk.notify.delivery import backends

    return ["email"] + sorted(name for name in backends() if name != "email")


def list_rules(actor: User | None) -> list[NotificationRule]:
    _require_admin(actor)
    return list(db.session.scalars(
        select(NotificationRule).order_by(NotificationRule.event,
                                          NotificationRule.recipient_kind,
                                          NotificationRule.backend)))


def get_rule(actor: User | None, rule_id: int) -> NotificationRule:
    _require_admin(actor)
    rule = db.session.get(NotificationRule, rule_id)
    if rule is None:
        raise NotFound(_("No notification rule %(id)s.", id=rule_id))
    return rule


def _check_choice(field: str, value, allowed) -> dict:
    if value not in allowed:
        return {field: [_("Must be one of: %(values)s.", values=", ".join(allowed))]}
    return {}


def create_rule(actor: User | None, data: dict) -> NotificationRule:
    _require_admin(actor)
    errors = {**_check_choice("event", data.get("event"), list(EVENTS)),
              **_check_choice("recipient_kind", data.get("recipient_kind"), list(KINDS)),
              **_check_choice("backend", data.get("backend", "email"), known_backends())}
    if errors:
        raise ValidationError(_("The rule has invalid fields."), fields=errors)
    rule = NotificationRule(
        event=data["event"], recipient_kind=data["recipient_kind"],
        backend=data.get("backend", "email"), enabled=data.get("enabled", True),
        mutable=data.get("mutable", True), include_actor=data.get("include_actor", False))
    db.session.add(rule)
    _commit()
    return rule


def update_rule(actor: User | None, rule_id: int, data: dict) -> NotificationRule:
    rule = get_rule(actor, rule_id)
    data = dict(data)
    version = data.pop("version", None)
    if version is None:
        raise ValidationError(_("The version you last read is required."),
                              fields={"version": [_("Missing data for required field.")]})
    if version != rule.version:
        raise Conflict(
            _("The rule was changed by someone else (version %(current)s, you sent "
              "%(sent)s); reload it and apply your change again.",
              current=rule.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=rule.version)]},
            code="stale_version")
    for name in ("enabled", "mutable", "include_actor"):
        if name in data:
            setattr(rule, name, bool(data[name]))
    _commit()
    return rule


def delete_rule(actor: User | None, rule_id: int) -> None:
    rule = get_rule(actor, rule_id)
    db.session.delete(rule)
    _commit()


def _commit() -> None:
    from sqlalchemy.orm.exc import StaleDataError

    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_("A rule for that event, recipient and backend exists already."),
                       fields={"event": [_("Already has a rule for this recipient and "
                                           "backend.")]},
                       code="duplicate_rule") from None
    except StaleDataError:
        db.session.rollback()
        raise Conflict(_("Someone else changed this rule at the same moment; reload and "
                         "retry."), fields={"version": [_("Stale.")]},
                       code="stale_version") from None
    finally:
        invalidate()


def seed_defaults() -> int:
    """Add the default rules when there are none at all (an admin's deletions stay
    deleted otherwise); how many were added."""
    if db.session.scalar(select(NotificationRule.id).limit(1)) is not None:
        db.session.commit()  # ends the read (on SQLite, frees the write lock)
        return 0
    for event_name, kind, backend, enabled, mutable, include_actor in DEFAULT_RULES:
        db.session.add(NotificationRule(event=event_name, recipient_kind=kind,
                                        backend=backend, enabled=enabled, mutable=mutable,
                                        include_actor=include_actor))
    db.session.commit()
    invalidate()
    return len(DEFAULT_RULES)


def seed_demo() -> None:
    seed_defaults()
