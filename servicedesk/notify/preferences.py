"""Users' own notification settings: mutes per (event, backend), channels, watching.

A preference row (user, event, backend, muted) mutes one event on one backend; the
event ``*`` turns a whole channel (backend) off. E-mail is always available and
cannot be switched off as a channel (mute its events instead); another backend is
offered when it can reach the user (its ``address_for(user)``). Rules an admin made
non-mutable are delivered whatever the user chose, and muting one is refused (422).
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from servicedesk.errors import ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.notify.rules import EVENTS, TicketWatcher, enabled_rules, known_backends
from servicedesk.tickets.models import Ticket

ALL_EVENTS = "*"


class NotificationPreference(db.Model):
    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    muted: Mapped[bool] = mapped_column(default=True)


def muted_for(event_name: str, user_ids) -> set[tuple]:
    """{(user id, backend)} muted for ``event_name``, plus {(user id, "*", backend)} for
    channels switched off. One statement."""
    rows = db.session.execute(
        select(NotificationPreference.user_id, NotificationPreference.event,
               NotificationPreference.backend)
        .where(NotificationPreference.user_id.in_(sorted(user_ids)),
               NotificationPreference.event.in_((event_name, ALL_EVENTS)),
               NotificationPreference.muted.is_(True))).all()
    return {(r.user_id, r.backend) if r.event != ALL_EVENTS else (r.user_id, ALL_EVENTS, r.backend)
            for r in rows}


def channels_of(user: User) -> list[dict]:
    """The backends ``user`` can be reached through, and whether they switched them on."""
    from servicedesk.notify.service import recipient_address

    off = set(db.session.scalars(
        select(NotificationPreference.backend).where(
            NotificationPreference.user_id == user.id,
            NotificationPreference.event == ALL_EVENTS,
            NotificationPreference.muted.is_(True))))
    channels = []
    for backend in known_backends():
        available = recipient_address(backend, user) is not None
        channels.append({"backend": backend, "available": available,
                         "locked": backend == "email",
                         "enabled": available and (backend == "email" or backend not in off)})
    return channels


def _lines() -> dict[tuple[str, str], bool]:
    """(event, backend) a user may hear about -> whether they may mute it (a line is
    locked when every enabled rule behind it is non-mutable)."""
    lines: dict[tuple[str, str], bool] = {}
    for event_name, rules in enabled_rules().items():
        if event_name not in EVENTS:
            continue
        for rule in rules:
            key = (event_name, rule.backend)
            lines[key] = lines.get(key, False) or rule.mutable
    return lines


def preferences_of(user: User) -> dict:
    mutes = {(p.event, p.backend) for p in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user.id,
                                             NotificationPreference.muted.is_(True)))}
    events = []
    for (event_name, backend), mutable in sorted(_lines().items(),
                                                 key=lambda i: (list(EVENTS).index(i[0][0]), i[0][1])):
        events.append({"event": event_name, "label": str(EVENTS[event_name]),
                       "backend": backend, "mutable": mutable,
                       "muted": mutable and (event_name, backend) in mutes})
    return {"events": events, "channels": channels_of(user)}


def set_preferences(user: User, data: dict) -> dict:
    """Replace ``user``'s mutes and channel choices with ``data`` (what is not listed is
    not muted). ``data``: {"events": [{event, backend, muted}], "channels": [{backend,
    enabled}]}. Refuses (422, naming ``mute.<event>.<backend>`` or
    ``channel.<backend>``) locked or unknown lines; nothing is changed then."""
    lines = _lines()
    backends = known_backends()
    errors: dict[str, list[str]] = {}
    wanted: set[tuple[str, str]] = set()
    for item in data.get("events") or ():
        event_name, backend = item.get("event"), item.get("backend", "email")
        field = f"mute.{event_name}.{backend}"
        if event_name not in EVENTS or backend not in backends:
            errors[field] = [_("Unknown event or backend.")]
        elif item.get("muted"):
            if (event_name, backend) in lines and not lines[(event_name, backend)]:
                errors[field] = [_("An administrator made this notification mandatory; "
                                   "it cannot be muted.")]
            else:
                wanted.add((event_name, backend))
    channels = {c["backend"]: c for c in channels_of(user)}
    for item in data.get("channels") or ():
        backend = item.get("backend")
        field = f"channel.{backend}"
        if backend not in channels:
            errors[field] = [_("Unknown backend.")]
        elif not item.get("enabled", True):
            if backend == "email":
                errors[field] = [_("E-mail is always available; mute single events instead.")]
            else:
                wanted.add((ALL_EVENTS, backend))
        elif not channels[backend]["available"]:
            errors[field] = [_("This channel has no address for you.")]
    if errors:
        raise ValidationError(_("Some notification settings cannot be saved."), fields=errors)
    db.session.execute(delete(NotificationPreference)
                       .where(NotificationPreference.user_id == user.id))
    for event_name, backend in sorted(wanted):
        db.session.add(NotificationPreference(user_id=user.id, event=event_name,
                                              backend=backend, muted=True))
    db.session.commit()
    return preferences_of(user)


# --- watching tickets ---------------------------------------------------------------------


def watchers_of(ticket: Ticket) -> list[User]:
    return list(db.session.scalars(
        select(User).join(TicketWatcher, TicketWatcher.user_id == User.id)
        .where(TicketWatcher.ticket_id == ticket.id).order_by(User.username)))


def watch(user: User, ticket: Ticket) -> list[User]:
    """``user`` watches ``ticket`` (which the caller made sure they may see); idempotent."""
    if db.session.get(TicketWatcher, (ticket.id, user.id)) is None:
        db.session.add(TicketWatcher(ticket_id=ticket.id, user_id=user.id))
        try:
            db.session.commit()
        except IntegrityError:  # a concurrent double click: watching already
            db.session.rollback()
    return watchers_of(ticket)


def unwatch(user: User, ticket: Ticket) -> list[User]:
    db.session.execute(delete(TicketWatcher).where(TicketWatcher.ticket_id == ticket.id,
                                                   TicketWatcher.user_id == user.id))
    db.session.commit()
    return watchers_of(ticket)
