"""Password sign-in for directory users: search by username (escaped), bind as them.

The sign-in page calls :func:`authenticate` for everyone. A local user (every user
whose ``auth_source`` is not ``ldap``, the break-glass admin among them) is handed to
the identity service unchanged, so local sign-in never depends on the directory. A
directory user's password is checked by the directory:

1. the user must be active here (a deactivated user never gets as far as the
   directory) and the directory connection enabled;
2. the service account searches the user base for ``(&<user filter>(<username
   attribute>=<username, escaped>))``: exactly one entry, whose stable id is the one
   this user was synced from (a different person who took the name cannot sign in as
   them), and not disabled there (AD's ACCOUNTDISABLE bit, or the disabled filter);
3. a bind as that entry's DN with the password — never with an empty password, which
   LDAP servers answer as a successful "unauthenticated bind".

Every failure is the same answer as for local users ("unknown username or wrong
password"), counted for the same throttling. A directory that cannot be reached is
logged, not counted against the user.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, func, select

from servicedesk.errors import TooManyRequests, ValidationError
from servicedesk.extensions import db, read_only_transaction
from servicedesk.identity import service as identity
from servicedesk.identity.models import LoginFailure, User
from servicedesk.ldap import directory, service
from servicedesk.ldap.directory import Directory, DirectoryError, Settings
from servicedesk.ldap.models import LdapAccount, LdapConfig
from servicedesk.types import utcnow

log = logging.getLogger(__name__)


class DirectoryUnavailable(Exception):
    """No directory server could answer: not the user's fault."""


def authenticate(username: str, password: str, address: str) -> User:
    """The user these credentials belong to, or the identity service's error."""
    name = (username or "").strip()[:150]
    address = (address or "unknown")[:64]
    # Reads in a transaction of their own, ended before the directory is asked: on
    # SQLite a sign-in's transaction holds the write lock (see extensions.py).
    with read_only_transaction():
        user = (identity.get_user(name) or _directory_user_any_case(name)) if name else None
        directory_user = user is not None and user.auth_source == "ldap"
        throttled = directory_user and identity._throttled(name.lower(), address)
        config = service.load_config() if directory_user else None
        account = db.session.get(LdapAccount, user.id) if directory_user else None
    if not directory_user:
        return identity.authenticate(username, password, address)
    if throttled:
        raise TooManyRequests(_("Too many failed sign-in attempts; try again in a few minutes."))
    try:
        ok = user.active and directory_password_ok(user, password or "", config, account)
    except DirectoryUnavailable:
        raise ValidationError(_("Unknown username or wrong password."),
                              code="bad_credentials") from None
    if not ok:
        _record_failure(name.lower(), address)
        raise ValidationError(_("Unknown username or wrong password."), code="bad_credentials")
    db.session.execute(delete(LoginFailure).where(LoginFailure.username == name.lower()))
    db.session.commit()
    return user


def _directory_user_any_case(name: str) -> User | None:
    """The directory user whose username is ``name`` in another case, if exactly one is
    (directories compare usernames without case; the sync never lets two differ only
    by case)."""
    found = db.session.scalars(select(User).where(func.lower(User.username) == name.lower(),
                                                  User.auth_source == "ldap").limit(2)).all()
    return found[0] if len(found) == 1 else None


def _record_failure(username: str, address: str) -> None:
    now = utcnow()
    window = timedelta(seconds=current_app.config["SERVICEDESK_LOGIN_WINDOW_SECONDS"])
    db.session.execute(delete(LoginFailure).where(LoginFailure.at < now - window))
    db.session.add(LoginFailure(username=username, address=address, at=now))
    db.session.commit()


def directory_password_ok(user: User, password: str, config: LdapConfig | None = None,
                          account: LdapAccount | None = None) -> bool:
    """Whether the directory accepts ``password`` for ``user`` (see the module doc)."""
    if not password:
        return False
    config = config or service.load_config()
    account = account or db.session.get(LdapAccount, user.id)
    if config is None or not config.enabled or account is None:
        return False
    settings = Settings.from_config(config)
    try:
        with Directory(settings) as d:
            dn = find_user_dn(config, d, user.username, account.directory_id)
    except DirectoryError as exc:
        log.warning("LDAP sign-in of %s: the directory is unavailable: %s", user.username,
                    exc.message)
        raise DirectoryUnavailable() from None
    if dn is None:
        return False
    try:
        return directory.bind_as(settings, dn, password)
    except DirectoryError as exc:
        log.warning("LDAP sign-in of %s: the bind could not be tried: %s", user.username,
                    exc.message)
        raise DirectoryUnavailable() from None


def user_filter(config: LdapConfig, username: str) -> str:
    """The filter finding exactly ``username`` (escaped: ``*`` or ``)`` match nothing wider)."""
    attribute = (config.attributes or {}).get("username") or "uid"
    return f"(&{config.user_filter}({attribute}={directory.escape(username)}))"


def find_user_dn(config: LdapConfig, d: Directory, username: str,
                 directory_id: str | None) -> str | None:
    """The DN of the one enabled entry with ``username`` (and, if given, that stable id)."""
    attributes = [config.id_attribute]
    if config.flavour == "ad":
        attributes.append("userAccountControl")
    found = []
    for item in d.paged_search(config.user_base_dn, user_filter(config, username), attributes,
                               min(config.page_size, 10)):
        found.append(item)
        if len(found) > 1:
            log.warning("LDAP sign-in: %d entries have the username %r; refused",
                        len(found), username)
            return None
    if not found:
        return None
    raw = found[0].get("raw_attributes") or {}
    if directory_id is not None and directory.stable_id(raw, config.id_attribute) != directory_id:
        return None
    if config.flavour == "ad":
        try:
            if int(directory.first_text(raw, "userAccountControl") or 0) & 0x2:
                return None
        except ValueError:
            return None
    if config.disabled_filter:
        disabled = f"(&{user_filter(config, username)}{config.disabled_filter})"
        if any(True for _item in d.paged_search(config.user_base_dn, disabled, ["1.1"], 10)):
            return None
    return found[0]["dn"]
