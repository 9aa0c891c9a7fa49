"""The directory: configuration (admins), connection test, and the sync's entry points.

Every function takes the acting user (``None``: the system — the CLI, a job). Only
admins read or change the configuration, test it, start a sync or read reports.

The CLI, the admin page, the API and the schedule all start a sync the same way:
:func:`start_sync` records a *queued* report and hands its id to
:func:`servicedesk.ldap.jobs.run_sync` — on an RQ worker when Redis is configured
(the web request does not wait for a directory of tens of thousands), here and now
otherwise (and always for the CLI). :func:`execute_report` then runs
:func:`servicedesk.ldap.sync.run` under the sync lock: one run at a time; a second one
finds the lock taken and reports itself *skipped*.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import uuid
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import ROLES, Group, User
from servicedesk.ldap import directory
from servicedesk.ldap.models import (
    LdapConfig,
    LdapSyncItem,
    LdapSyncReport,
    LdapSyncState,
)
from servicedesk.types import utcnow

log = logging.getLogger(__name__)

CONFIG_ID = STATE_ID = 1
# A lock whose holder has not written a heartbeat for this long belongs to a dead run.
LOCK_STALE_AFTER = timedelta(minutes=30)
REPORTS_KEPT = 200
ATTRIBUTE_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]{0,63}|\d+(?:\.\d+)+)$")
CHANGE_ATTRIBUTES = ("", "modifyTimestamp", "whenChanged", "uSNChanged")

PRESETS = {
    "openldap": {
        "security": "starttls",
        "user_filter": "(objectClass=inetOrgPerson)",
        "disabled_filter": "",
        "group_filter": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
        "group_member_attribute": "member",
        "id_attribute": "entryUUID",
        "change_attribute": "modifyTimestamp",
        "attributes": {"username": "uid", "email": "mail", "display_name": "displayName",
                       "phone": "telephoneNumber", "department": "departmentNumber",
                       "title": "title", "manager": "manager"},
    },
    "ad": {
        "security": "ldaps",
        "user_filter": "(&(objectCategory=person)(objectClass=user))",
        "disabled_filter": "",
        "group_filter": "(objectClass=group)",
        "group_member_attribute": "member",
        "id_attribute": "objectGUID",
        "change_attribute": "uSNChanged",
        "attributes": {"username": "sAMAccountName", "email": "mail",
                       "display_name": "displayName", "phone": "telephoneNumber",
                       "department": "department", "title": "title", "manager": "manager"},
    },
}

EDITABLE = ("enabled", "flavour", "server_uris", "security", "ca_file", "tls_verify",
            "timeout_seconds", "bind_dn", "bind_password", "user_base_dn", "user_filter",
            "disabled_filter", "group_base_dn", "group_filter", "group_member_attribute",
            "id_attribute", "change_attribute", "attributes", "group_mappings",
            "default_role", "page_size", "sync_interval_minutes", "max_deactivate_percent")


def _require_admin(actor: User | None) -> None:
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins manage the directory connection."))


# --- configuration ---------------------------------------------------------------------


def new_config(flavour: str = "openldap") -> LdapConfig:
    """An unsaved configuration with the flavour's preset and our defaults."""
    config = LdapConfig(id=CONFIG_ID, enabled=False, flavour=flavour, server_uris=[],
                        ca_file="", tls_verify=True, timeout_seconds=10, bind_dn="",
                        bind_password="", user_base_dn="", group_base_dn="",
                        group_mappings=[], default_role="requester", page_size=500,
                        sync_interval_minutes=0, max_deactivate_percent=10, version=0)
    for key, value in PRESETS[flavour].items():
        setattr(config, key, dict(value) if isinstance(value, dict) else value)
    return config


def load_config() -> LdapConfig | None:
    """The saved configuration, or None (no permission check: for the sync and login)."""
    return db.session.get(LdapConfig, CONFIG_ID)


def get_config(actor: User | None) -> LdapConfig:
    """The saved configuration, or the OpenLDAP preset (unsaved, version 0) if none is."""
    _require_admin(actor)
    return load_config() or new_config()


def preset(actor: User | None, flavour: str) -> dict:
    _require_admin(actor)
    if flavour not in PRESETS:
        raise NotFound(_("No preset %(name)s; there are: %(names)s.", name=repr(flavour),
                         names=", ".join(PRESETS)))
    return {"flavour": flavour, "values": PRESETS[flavour]}


def _values(config: LdapConfig) -> dict:
    return {key: getattr(config, key) for key in EDITABLE}


def validate(values: dict) -> dict[str, list[str]]:
    """Every problem of a complete set of configuration values, by field."""
    errors: dict[str, list[str]] = {}

    def bad(field: str, reason: str) -> None:
        errors.setdefault(field, []).append(reason)

    security = values["security"]
    uris = values["server_uris"] or []
    if not uris:
        bad("server_uris", _("At least one server URI, such as ldaps://dc1.example.com."))
    for uri in uris:
        try:
            scheme, _host, _port = directory.parse_uri(uri)
        except ValueError:
            bad("server_uris", _("%(uri)s is not an ldap:// or ldaps:// URI with a host "
                                 "(and nothing after the port).", uri=repr(uri)))
            continue
        if (scheme == "ldaps") != (security == "ldaps"):
            bad("server_uris", _("%(uri)s does not fit security %(security)s: ldaps needs "
                                 "ldaps:// URIs, starttls and plain need ldap:// URIs.",
                                 uri=repr(uri), security=security))
    if len(set(uris)) != len(uris):
        bad("server_uris", _("A URI is listed twice."))
    ca_file = values["ca_file"]
    if ca_file and security != "plain":
        problem = _ca_file_problem(ca_file)
        if problem:
            bad("ca_file", problem)
    for key in ("bind_dn", "user_base_dn", "group_base_dn"):
        if values[key] and not directory.valid_dn(values[key]):
            bad(key, _("Not a distinguished name, e.g. ou=people,dc=example,dc=com."))
    if not values["user_base_dn"]:
        bad("user_base_dn", _("Required: where the users are, e.g. ou=people,dc=example,dc=com."))
    if values["bind_dn"] and not values["bind_password"]:
        bad("bind_password", _("Required with a bind DN."))
    if not values["user_filter"]:
        bad("user_filter", _("Required, e.g. (objectClass=inetOrgPerson)."))
    for key in ("user_filter", "disabled_filter", "group_filter"):
        if values[key] and not directory.valid_filter(values[key]):
            bad(key, _("Not one LDAP filter in parentheses, e.g. (objectClass=person)."))
    for key in ("id_attribute", "group_member_attribute"):
        if not ATTRIBUTE_NAME.match(values[key] or ""):
            bad(key, _("An attribute name, such as %(example)s.",
                       example="entryUUID" if key == "id_attribute" else "member"))
    if values["change_attribute"] not in CHANGE_ATTRIBUTES:
        bad("change_attribute", _("One of: %(values)s (empty: always a full sync).",
                                  values=", ".join(CHANGE_ATTRIBUTES[1:])))
    attributes = values["attributes"] or {}
    if not attributes.get("username"):
        bad("attributes", _("username must name the attribute holding the login name."))
    for key, name in attributes.items():
        if name and not ATTRIBUTE_NAME.match(name):
            bad("attributes", _("%(key)s: %(name)s is not an attribute name.", key=key,
                                name=repr(name)))
    mappings = values["group_mappings"] or []
    if mappings and not values["group_base_dn"]:
        bad("group_base_dn", _("Required when groups are mapped: where the groups are."))
    if mappings and not values["group_filter"]:
        bad("group_filter", _("Required when groups are mapped, e.g. (objectClass=groupOfNames)."))
    _validate_mappings(mappings, bad)
    if values["default_role"] not in ("requester", "agent"):
        bad("default_role", _("requester or agent (higher roles come from group mappings)."))
    if not 1 <= int(values["page_size"] or 0) <= 1000:
        bad("page_size", _("Between 1 and 1000 (servers refuse larger pages)."))
    interval = int(values["sync_interval_minutes"] or 0)
    if interval and not 5 <= interval <= 10080:
        bad("sync_interval_minutes", _("0 (no schedule) or 5 to 10080 minutes."))
    if not 0 <= int(values["max_deactivate_percent"]) <= 100:
        bad("max_deactivate_percent", _("Between 0 and 100."))
    return errors


def _ca_file_problem(path: str) -> str | None:
    if not os.path.isabs(path):
        return _("An absolute path to a PEM file.")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        return _("No readable file at %(path)s.", path=path)
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError):
        return _("%(path)s holds no PEM certificate.", path=path)
    return None


def _validate_mappings(mappings: list, bad) -> None:
    names = {m.get("group") for m in mappings if m.get("group")}
    known = set(db.session.scalars(select(Group.name).where(Group.name.in_(names)))) \
        if names else set()
    seen = set()
    for index, mapping in enumerate(mappings, start=1):
        dn = mapping.get("ldap_group", "")
        if not directory.valid_dn(dn):
            bad("group_mappings", _("Mapping %(n)s: %(dn)s is not a group's DN.", n=index,
                                    dn=repr(dn)))
        if not mapping.get("group") and not mapping.get("role"):
            bad("group_mappings", _("Mapping %(n)s: give a servicedesk group, a role or both.",
                                    n=index))
        if mapping.get("group") and mapping["group"] not in known:
            bad("group_mappings", _("Mapping %(n)s: there is no servicedesk group %(name)s.",
                                    n=index, name=repr(mapping["group"])))
        if mapping.get("role") and mapping["role"] not in ROLES:
            bad("group_mappings", _("Mapping %(n)s: role must be one of %(roles)s.", n=index,
                                    roles=", ".join(ROLES)))
        key = (directory.normalize_dn(dn), mapping.get("group"), mapping.get("role"))
        if key in seen:
            bad("group_mappings", _("Mapping %(n)s repeats an earlier one.", n=index))
        seen.add(key)


def _merged(config: LdapConfig, data: dict) -> dict:
    values = _values(config)
    for key in EDITABLE:
        if key in data and data[key] is not None:
            values[key] = data[key]
    if "attributes" in data:
        values["attributes"] = {k: v.strip() for k, v in (data["attributes"] or {}).items()
                                if v and v.strip()}
    if "group_mappings" in data:
        values["group_mappings"] = [
            {"ldap_group": m["ldap_group"], "group": m.get("group", ""),
             "role": m.get("role", "")} for m in data["group_mappings"] or []]
    return values


def update_config(actor: User | None, data: dict) -> LdapConfig:
    """Save the fields given (validated as a whole); ``version`` must be the one read.

    ``bind_password`` is changed only when given; switching certificate validation
    off is logged, as every connection made that way is.
    """
    _require_admin(actor)
    config = load_config()
    if config is not None:
        if data.get("version") is None:
            raise ValidationError(_("The version you last read is required."),
                                  fields={"version": [_("Missing data for required field.")]})
        if data["version"] != config.version:
            raise Conflict(
                _("The directory settings were changed by someone else (version "
                  "%(current)s, you sent %(sent)s); reload them and apply your change again.",
                  current=config.version, sent=data["version"]),
                fields={"version": [_("Stale: the current version is %(current)s.",
                                      current=config.version)]},
                code="stale_version")
    base = config or new_config(data.get("flavour") or "openldap")
    values = _merged(base, data)
    errors = validate(values)
    if errors:
        raise ValidationError(_("The directory settings are not valid."), fields=errors)
    if config is None:
        config = base
        config.version = 0
        db.session.add(config)
    was_verifying = bool(config.tls_verify)
    for key, value in values.items():
        setattr(config, key, value)
    config.version = (config.version or 0) + 1
    config.updated_at = utcnow()
    config.updated_by_id = actor.id if actor is not None else None
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_("The directory settings were saved by someone else at the same "
                         "moment; reload them and apply your change again."),
                       fields={"version": [_("Stale.")]}, code="stale_version") from None
    if was_verifying and not config.tls_verify and config.security != "plain":
        log.warning("LDAP: %s switched certificate validation off",
                    actor.username if actor is not None else "the system")
    return config


# --- connection test ---------------------------------------------------------------------


def test_connection(actor: User | None, draft: dict | None = None) -> dict:
    """Connect, bind, read the root DSE, look at the bases and a sample user.

    ``draft`` holds unsaved changes to try on top of the saved settings (nothing is
    saved). Returns ``{ok, server, steps: [{step, ok, detail}], warnings}``.
    """
    _require_admin(actor)
    values = _merged(load_config() or new_config((draft or {}).get("flavour") or "openldap"),
                     draft or {})
    errors = validate(values)
    if errors:
        raise ValidationError(_("The directory settings are not valid."), fields=errors)
    config = LdapConfig(**values)
    from servicedesk.ldap.sync import test_directory

    db.session.commit()  # no transaction (on SQLite: the write lock) across network calls
    return test_directory(config)


# --- the sync: reports, the lock, dispatch ----------------------------------------------------


def start_sync(actor: User | None, trigger: str, dry_run: bool = False, full: bool = False,
               allow_mass_deactivation: bool = False, run_here: bool = False) -> LdapSyncReport:
    """Record a queued sync report and run it: on a worker with Redis, else (or with
    ``run_here``) in this process. Returns the report (finished when run here)."""
    _require_admin(actor)
    if load_config() is None:
        raise Conflict(_("The directory is not configured yet."), code="not_configured")
    report = LdapSyncReport(status="queued", trigger=trigger,
                            actor_id=actor.id if actor is not None else None, dry_run=dry_run,
                            full_requested=full, allow_mass_deactivation=allow_mass_deactivation,
                            created_at=utcnow())
    db.session.add(report)
    db.session.commit()
    _prune_reports()
    from servicedesk.ldap import jobs

    jobs.dispatch(report.id, run_here=run_here)
    db.session.expire_all()
    return db.session.get(LdapSyncReport, report.id)


def _prune_reports() -> None:
    cutoff = db.session.scalar(select(LdapSyncReport.id).order_by(LdapSyncReport.id.desc())
                               .offset(REPORTS_KEPT).limit(1))
    if cutoff is not None:
        db.session.execute(delete(LdapSyncItem).where(LdapSyncItem.report_id <= cutoff))
        db.session.execute(delete(LdapSyncReport).where(LdapSyncReport.id <= cutoff))
        db.session.commit()


def execute_report(report_id: int) -> LdapSyncReport | None:
    """Run queued report ``report_id`` (once: a report already started is left alone)."""
    claimed = db.session.execute(
        update(LdapSyncReport)
        .where(LdapSyncReport.id == report_id, LdapSyncReport.status == "queued")
        .values(status="running", started_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if not claimed:
        return db.session.get(LdapSyncReport, report_id)
    report = db.session.get(LdapSyncReport, report_id)
    db.session.refresh(report)
    from servicedesk.ldap import sync

    config = load_config()
    if config is None:
        return finish(report, "failed", _("The directory is not configured."))
    token = None
    if not report.dry_run:
        token = acquire_lock()
        if token is None:
            state = db.session.get(LdapSyncState, STATE_ID)
            since = state.locked_at.isoformat(timespec="seconds") if state and state.locked_at \
                else "?"
            return finish(report, "skipped",
                          _("Another sync is running (since %(since)s); this one did nothing.",
                            since=since))
    try:
        return sync.run(config, report, token)
    except Exception as exc:  # never leave a report "running" or the lock held
        db.session.rollback()
        log.exception("LDAP sync %s failed", report_id)
        report = db.session.get(LdapSyncReport, report_id)
        return finish(report, "failed", _("The sync failed: %(error)s", error=str(exc)[:500]))
    finally:
        if token is not None:
            release_lock(token)


def finish(report: LdapSyncReport, status: str, message: str = "") -> LdapSyncReport:
    report.status = status
    if message:
        report.message = message
    report.finished_at = utcnow()
    db.session.commit()
    return report


def state_row() -> LdapSyncState:
    """The one sync-state row, created on first use (safely against a concurrent first use)."""
    state = db.session.get(LdapSyncState, STATE_ID)
    if state is not None:
        return state
    try:
        with db.session.begin_nested():
            db.session.add(LdapSyncState(id=STATE_ID))
    except IntegrityError:
        pass
    db.session.commit()
    return db.session.get(LdapSyncState, STATE_ID)


def acquire_lock() -> str | None:
    """Take the sync lock: a token, or None if another live run holds it."""
    state_row()
    token = uuid.uuid4().hex
    now = utcnow()
    taken = db.session.execute(
        update(LdapSyncState)
        .where(LdapSyncState.id == STATE_ID,
               or_(LdapSyncState.lock_token.is_(None),
                   LdapSyncState.heartbeat_at < now - LOCK_STALE_AFTER))
        .values(lock_token=token, locked_at=now, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return token if taken == 1 else None


class LockLost(Exception):
    """The lock went stale and another run took it: stop before writing anything more."""


def heartbeat(token: str) -> None:
    kept = db.session.execute(
        update(LdapSyncState)
        .where(LdapSyncState.id == STATE_ID, LdapSyncState.lock_token == token)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if kept != 1:
        raise LockLost()


def release_lock(token: str) -> None:
    db.session.rollback()
    db.session.execute(
        update(LdapSyncState)
        .where(LdapSyncState.id == STATE_ID, LdapSyncState.lock_token == token)
        .values(lock_token=None, locked_at=None, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


# --- reports ---------------------------------------------------------------------------------


def list_reports(actor: User | None, limit: int = 50,
                 before: int | None = None) -> list[LdapSyncReport]:
    _require_admin(actor)
    query = select(LdapSyncReport).order_by(LdapSyncReport.id.desc()).limit(limit)
    if before:
        query = query.where(LdapSyncReport.id < before)
    return list(db.session.scalars(query))


def get_report(actor: User | None, report_id: int) -> LdapSyncReport:
    _require_admin(actor)
    report = db.session.get(LdapSyncReport, report_id)
    if report is None:
        raise NotFound(_("No sync report %(id)s.", id=report_id))
    return report


def report_items(actor: User | None, report: LdapSyncReport, action: str | None = None,
                 after: int = 0, limit: int = 200) -> tuple[list[LdapSyncItem], int | None]:
    """A page of the report's items (id order) and the id to continue after, if any."""
    _require_admin(actor)
    query = (select(LdapSyncItem).where(LdapSyncItem.report_id == report.id,
                                        LdapSyncItem.id > after)
             .order_by(LdapSyncItem.id).limit(limit + 1))
    if action:
        query = query.where(LdapSyncItem.action == action)
    items = list(db.session.scalars(query))
    more = len(items) > limit
    items = items[:limit]
    return items, (items[-1].id if more else None)
