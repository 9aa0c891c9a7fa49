"""Users, groups and credentials. Every function takes the acting user (None = system/CLI)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from babel.dates import get_timezone
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from servicedesk.errors import Conflict, Forbidden, NotFound, TooManyRequests, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import ROLES, ApiToken, Group, LoginFailure, User
from servicedesk.types import utcnow

TOKEN_PREFIX = "sdk_"
USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")
# Checked against when the username is unknown, so both answers take the same time.
_DUMMY_HASH = generate_password_hash("servicedesk-timing-equaliser")


def _require_admin(actor: User | None) -> None:
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins manage users and groups."))


def get_user(username: str) -> User | None:
    return db.session.scalars(select(User).where(User.username == username)).one_or_none()


def get_group(name: str) -> Group | None:
    return db.session.scalars(select(Group).where(Group.name == name)).one_or_none()


def create_group(actor: User | None, name: str, line: int, description: str = "") -> Group:
    _require_admin(actor)
    name = (name or "").strip()
    errors = {}
    if not name or len(name) > 150:
        errors["name"] = [_("Between 1 and 150 characters.")]
    if line not in (1, 2, 3):
        errors["line"] = [_("Support line must be 1, 2 or 3.")]
    if errors:
        raise ValidationError(_("Invalid group."), fields=errors)
    if get_group(name) is not None:
        raise Conflict(_("A group named %(name)s exists.", name=repr(name)),
                       fields={"name": [_("Already taken.")]})
    group = Group(name=name, support_line=line, description=description)
    db.session.add(group)
    db.session.commit()
    return group


def create_user(actor: User | None, username: str, email: str, role: str,
                groups: list[str] | None = None, password: str | None = None,
                display_name: str = "", locale: str = "en", timezone: str = "UTC") -> User:
    _require_admin(actor)
    username = (username or "").strip()
    errors = {}
    if not USERNAME_RE.match(username):
        errors["username"] = [_("1-150 letters, digits or . @ + - _ characters.")]
    if not email or "@" not in email or len(email) > 254 or any(c in email for c in "\r\n"):
        errors["email"] = [_("A valid e-mail address.")]
    if role not in ROLES:
        errors["role"] = [_("One of: %(values)s.", values=", ".join(ROLES))]
    if password is not None and len(password) < 8:
        errors["password"] = [_("At least 8 characters.")]
    if locale not in current_app.config["SERVICEDESK_LOCALES"]:
        errors["locale"] = [_("One of: %(values)s.",
                               values=", ".join(current_app.config["SERVICEDESK_LOCALES"]))]
    if not _known_timezone(timezone):
        errors["timezone"] = [_("An IANA time zone name, such as Europe/Berlin or UTC.")]
    resolved_groups = []
    for name in groups or []:
        group = get_group(name)
        if group is None:
            errors.setdefault("groups", []).append(_("Unknown group %(name)s.", name=repr(name)))
        resolved_groups.append(group)
    if errors:
        raise ValidationError(_("Invalid user."), fields=errors)
    if get_user(username) is not None:
        raise Conflict(_("The username %(username)s is taken.", username=repr(username)),
                       fields={"username": [_("Already taken.")]})
    user = User(
        username=username,
        email=email,
        role=role,
        display_name=display_name or username,
        locale=locale,
        timezone=timezone,
        password_hash=generate_password_hash(password) if password else None,
    )
    user.groups = resolved_groups
    db.session.add(user)
    db.session.commit()
    return user


def _known_timezone(name) -> bool:
    """Whether the pages can show times in ``name``: Flask-Babel looks it up with this
    same function for every signed-in request, so an unknown one breaks them all."""
    try:
        get_timezone(name)
    except (LookupError, ValueError, TypeError):
        return False
    return isinstance(name, str) and bool(name)


def add_member(actor: User | None, user: User, group: Group) -> None:
    _require_admin(actor)
    if group not in user.groups:
        user.groups.append(group)
    db.session.commit()


def remove_member(actor: User | None, user: User, group: Group) -> None:
    _require_admin(actor)
    if group in user.groups:
        user.groups.remove(group)
    db.session.commit()


def require_group(name: str) -> Group:
    group = get_group(name)
    if group is None:
        raise NotFound(_("No group %(name)s.", name=repr(name)))
    return group


def set_password(actor: User | None, user: User, password: str) -> None:
    if actor is not None and actor.id != user.id:
        _require_admin(actor)
    if not password or len(password) < 8:
        raise ValidationError(_("Password too short."),
                              fields={"password": [_("At least 8 characters.")]})
    user.password_hash = generate_password_hash(password)
    user.session_epoch += 1  # other sessions end with the old password
    db.session.commit()


def deactivate_user(actor: User | None, user: User) -> None:
    """Deactivate ``user``: every session and API token of theirs stops working at once."""
    _require_admin(actor)
    if actor is not None and actor.id == user.id:
        raise Conflict(_("You cannot deactivate yourself."), code="self_deactivation")
    user.active = False
    user.session_epoch += 1
    now = utcnow()
    for token in db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        token.revoked_at = now
    db.session.commit()


def activate_user(actor: User | None, user: User) -> None:
    _require_admin(actor)
    user.active = True
    db.session.commit()


def set_working_hours(actor: User | None, user: User, calendar_name: str | None) -> None:
    """Give ``user`` working hours: the SLA calendar named ``calendar_name`` (None: the
    policy's calendar applies). Escalation notifications to them wait for these hours
    unless the step says otherwise. Admins only; an unknown name changes nothing."""
    from servicedesk.sla.models import SlaCalendar  # the SLA tables build on identity

    _require_admin(actor)
    calendar_id = None
    if calendar_name is not None:
        calendar_id = db.session.scalar(
            select(SlaCalendar.id).where(SlaCalendar.name == calendar_name))
        if calendar_id is None:
            raise ValidationError(
                _("No SLA calendar is named %(name)s.", name=repr(calendar_name)),
                fields={"working_hours": [_("Unknown calendar.")]})
    user.calendar_id = calendar_id
    db.session.commit()


def working_hours_name(user: User) -> str | None:
    """The name of ``user``'s working-hours calendar, if they have one of their own."""
    if user.calendar_id is None:
        return None
    from servicedesk.sla.models import SlaCalendar

    return db.session.scalar(select(SlaCalendar.name).where(SlaCalendar.id == user.calendar_id))


# --- API tokens ----------------------------------------------------------------------


def _hash_token(raw: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(user: User, name: str = "") -> str:
    """Create an API token for ``user``; the only time the token itself is seen."""
    if not user.active:
        raise Conflict(_("%(username)s is deactivated.", username=user.username),
                       code="user_inactive")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, name=name, token_hash=_hash_token(raw)))
    db.session.commit()
    return raw


def user_for_token(raw: str) -> User | None:
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    row = db.session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _hash_token(raw))
    ).one_or_none()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or not user.active:
        return None
    return user


# --- password login ------------------------------------------------------------------


def _throttled(username: str, address: str) -> bool:
    config = current_app.config
    since = utcnow() - timedelta(seconds=config["SERVICEDESK_LOGIN_WINDOW_SECONDS"])
    by_user = db.session.scalar(
        select(func.count()).select_from(LoginFailure)
        .where(LoginFailure.username == username, LoginFailure.at >= since)
    )
    if by_user >= config["SERVICEDESK_LOGIN_MAX_PER_USER"]:
        return True
    by_address = db.session.scalar(
        select(func.count()).select_from(LoginFailure)
        .where(LoginFailure.address == address, LoginFailure.at >= since)
    )
    return by_address >= config["SERVICEDESK_LOGIN_MAX_PER_ADDRESS"]


def authenticate(username: str, password: str, address: str) -> User:
    """The user whose credentials these are, or an error that says the same for all failures.

    Unknown user, wrong password and deactivated user get one answer, in about the same
    time; repeated failures per username and per address are throttled (429).
    """
    username = (username or "").strip()[:150]
    address = (address or "unknown")[:64]
    if _throttled(username.lower(), address):
        raise TooManyRequests(_("Too many failed sign-in attempts; try again in a few minutes."))
    user = get_user(username)
    ok = check_password_hash(user.password_hash if user and user.password_hash else _DUMMY_HASH,
                             password or "")
    if not (ok and user is not None and user.active and user.password_hash):
        now = utcnow()
        window = timedelta(seconds=current_app.config["SERVICEDESK_LOGIN_WINDOW_SECONDS"])
        db.session.execute(delete(LoginFailure).where(LoginFailure.at < now - window))
        db.session.add(LoginFailure(username=username.lower(), address=address, at=now))
        db.session.commit()
        raise ValidationError(_("Unknown username or wrong password."), code="bad_credentials")
    db.session.execute(delete(LoginFailure).where(LoginFailure.username == username.lower()))
    db.session.commit()
    return user


def load_session_user(session_id: str) -> User | None:
    """Flask-Login's loader: ``"<id>:<epoch>"``; a stale epoch means a killed session."""
    try:
        user_id, epoch = (int(part) for part in session_id.split(":", 1))
    except (ValueError, AttributeError):
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.session_epoch != epoch:
        return None
    return user


def require_user(username: str) -> User:
    user = get_user(username)
    if user is None:
        raise NotFound(_("No user %(username)s.", username=repr(username)))
    return user
