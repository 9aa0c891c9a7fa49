"""One sync run: read the directory, plan, guard, apply, report.

**Read** (``read_directory``): users by the user filter — all of them (full), or only
those changed since the watermark (incremental: ``modifyTimestamp`` / ``whenChanged``
``>=`` the highest value seen, or ``uSNChanged`` above the highest committed USN the
same domain controller reported) plus, in that case, the stable ids of all users (one
attribute each: who is gone). Then the ids of users the disabled filter matches, and the
members of each mapped group: AD's in-chain matching rule when the server is Active
Directory, otherwise all groups read once and each mapped group expanded through nested
groups with a visited set (cycles end). Every search is paged and checked
(``directory.Directory.paged_search``): an incomplete read raises before anything is
planned.

**Plan** (``plan``): match entries to ``ldap_accounts`` by stable id (entryUUID /
objectGUID), never by DN; decide creations, updates (incl. moves and renames),
deactivations (missing or disabled; never deletion) and reactivations (only of users the
sync itself deactivated), group memberships (only of mapped servicedesk groups), roles
(only when a mapping names one) and managers (from the manager DN). A username that an
existing user (local or another directory entry) already has is an error, never merged.

**Guard**: more deactivations than ``max_deactivate_percent`` of the active directory
users aborts the run with nothing changed (unless the run allows it explicitly).

**Apply** (not for dry runs): in batches of 500, each its own transaction, the lock's
heartbeat renewed between them; deactivation and reactivation go through the identity
service, so sessions and API tokens of a deactivated user die at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import delete, func, insert, select, update

from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.identity.models import ROLES, Group, User, group_members
from servicedesk.ldap import directory
from servicedesk.ldap.directory import Directory, DirectoryError, Settings
from servicedesk.ldap.models import LdapAccount, LdapConfig, LdapSyncItem, LdapSyncReport
from servicedesk.types import utcnow

log = logging.getLogger(__name__)

FULL_SYNC_EVERY = timedelta(hours=24)
BATCH = 500
READ_DEADLINE_SECONDS = 3600
UAC_ACCOUNTDISABLE = 0x2
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
USN_ATTRIBUTES = {"usnchanged"}
NEW = "new"  # in the username map: claimed by a user this run creates
UNIQUE_MEMBER_UID = re.compile(r"#'[01]*'B$")


@dataclass
class Entry:
    """One directory user as read."""

    directory_id: str
    dn: str
    dn_hash: str
    username: str
    email: str = ""
    display_name: str = ""
    phone: str = ""
    department: str = ""
    title: str = ""
    manager_dn: str = ""
    disabled: bool = False
    problem: str = ""  # why it cannot be synced (reported; the user still counts as present)


@dataclass
class Snapshot:
    """What one read of the directory found."""

    server: str
    mode: str
    entries: list[Entry] = field(default_factory=list)
    present_ids: set[str] = field(default_factory=set)
    disabled_ids: set[str] = field(default_factory=set)
    # per mapping index: ("ids", {directory ids}) | ("dns", {dn hashes}) | None (not found)
    members: dict[int, tuple[str, set[str]] | None] = field(default_factory=dict)
    watermark: str | None = None
    errors: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Plan:
    creates: list[Entry] = field(default_factory=list)
    user_updates: dict[str, dict] = field(default_factory=dict)      # directory id -> fields
    account_updates: dict[str, dict] = field(default_factory=dict)
    deactivations: dict[str, str] = field(default_factory=dict)     # id -> reason
    reactivations: list[str] = field(default_factory=list)
    quiet_reasons: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)               # desired, when changed
    group_adds: list[tuple[int, str]] = field(default_factory=list)   # (group id, directory id)
    group_removes: list[tuple[int, str]] = field(default_factory=list)
    managers: dict[str, str | None] = field(default_factory=dict)     # id -> manager's id
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    who: dict[str, tuple[str, str]] = field(default_factory=dict)     # id -> (dn, username)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    errored: set[str] = field(default_factory=set)                    # directory ids


# --- reading ----------------------------------------------------------------------------


def _gtime(text: str) -> datetime | None:
    match = re.match(r"^(\d{14})(?:[.,]\d+)?(Z|[+-]\d{4})?$", (text or "").strip())
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%d%H%M%S")


def _later(a: str | None, b: str, usn: bool) -> str:
    if a is None:
        return b
    if usn:
        return b if int(b) > int(a) else a
    ka, kb = _gtime(a), _gtime(b)
    return b if kb is not None and (ka is None or kb > ka) else a


def _user_attributes(config: LdapConfig) -> list[str]:
    names = [config.id_attribute, *(v for v in (config.attributes or {}).values() if v)]
    if config.change_attribute:
        names.append(config.change_attribute)
    if config.flavour == "ad":
        names.append("userAccountControl")
    return list(dict.fromkeys(names))


def _entry(config: LdapConfig, item: dict, errors: list) -> Entry | None:
    raw = item.get("raw_attributes") or {}
    dn = item.get("dn") or ""
    mapping = config.attributes or {}
    directory_id = directory.stable_id(raw, config.id_attribute)
    if not directory_id:
        errors.append((dn, "", _("The entry has no %(attr)s (its stable id): skipped.",
                                 attr=config.id_attribute)))
        return None
    try:
        values = {key: directory.first_text(raw, mapping.get(key, ""))
                  for key in ("username", "email", "display_name", "phone", "department",
                              "title", "manager")}
    except UnicodeDecodeError:
        return Entry(directory_id, dn, directory.dn_hash(dn), "",
                     problem=_("A mapped attribute is not UTF-8 text: skipped."))
    username = values["username"]
    disabled = False
    if config.flavour == "ad":
        try:
            disabled = bool(int(directory.first_text(raw, "userAccountControl") or 0)
                            & UAC_ACCOUNTDISABLE)
        except ValueError:
            disabled = False
    return Entry(directory_id=directory_id, dn=dn, dn_hash=directory.dn_hash(dn),
                 username=username, email=values["email"],
                 display_name=values["display_name"][:200], phone=values["phone"][:100],
                 department=values["department"][:200], title=values["title"][:200],
                 manager_dn=values["manager"], disabled=disabled)


def choose_mode(config: LdapConfig, state, full: bool, server: str) -> str:
    if full or not config.change_attribute or state is None or not state.watermark:
        return "full"
    if state.watermark_config_version != config.version or state.watermark_server != server:
        return "full"  # other settings, or (USNs are per server) another server
    if state.last_full_at is None or utcnow() - state.last_full_at > FULL_SYNC_EVERY:
        return "full"
    return "incremental"


def read_directory(config: LdapConfig, state, full: bool) -> Snapshot:
    deadline = time.monotonic() + READ_DEADLINE_SECONDS
    with Directory(Settings.from_config(config)) as d:
        mode = choose_mode(config, state, full, d.server_uri)
        snap = Snapshot(server=d.server_uri, mode=mode)
        dse = d.root_dse()
        is_ad = directory.AD_CAPABILITY_OID in dse.get("supportedCapabilities", [])
        change = config.change_attribute
        usn = change.lower() in USN_ATTRIBUTES
        if usn and dse.get("highestCommittedUSN"):
            # Taken before reading: whatever changes meanwhile is above it, so next time.
            snap.watermark = dse["highestCommittedUSN"][0]
        page = config.page_size
        user_filter = config.user_filter
        if mode == "incremental":
            since = str(int(state.watermark) + 1) if usn else state.watermark
            user_filter = f"(&{config.user_filter}({change}>={directory.escape(since)}))"
        for item in d.paged_search(config.user_base_dn, user_filter, _user_attributes(config),
                                   page, deadline=deadline):
            entry = _entry(config, item, snap.errors)
            if entry is None:
                continue
            snap.entries.append(entry)
            marker = directory.first_text(item.get("raw_attributes") or {}, change) \
                if change else ""
            if marker and not (usn and dse.get("highestCommittedUSN")):
                snap.watermark = _later(snap.watermark, marker, usn)
        if mode == "incremental":
            for item in d.paged_search(config.user_base_dn, config.user_filter,
                                       [config.id_attribute], page, deadline=deadline):
                sid = directory.stable_id(item.get("raw_attributes") or {}, config.id_attribute)
                if sid:
                    snap.present_ids.add(sid)
            snap.watermark = snap.watermark or state.watermark
        else:
            snap.present_ids = {e.directory_id for e in snap.entries}
        if config.disabled_filter:
            for item in d.paged_search(config.user_base_dn,
                                       f"(&{config.user_filter}{config.disabled_filter})",
                                       [config.id_attribute], page, deadline=deadline):
                sid = directory.stable_id(item.get("raw_attributes") or {}, config.id_attribute)
                if sid:
                    snap.disabled_ids.add(sid)
        if config.group_mappings:
            if config.flavour == "ad" and is_ad:
                _members_in_chain(config, d, snap, deadline)
            else:
                _members_recursive(config, d, snap, deadline)
    return snap


def _members_in_chain(config: LdapConfig, d: Directory, snap: Snapshot, deadline) -> None:
    """AD: each mapped group's transitive members in one search each (1.2.840.113556.1.4.1941)."""
    for index, mapping in enumerate(config.group_mappings):
        if not d.exists(mapping["ldap_group"]):
            snap.members[index] = None
            continue
        in_chain = directory.in_chain_filter("memberOf", mapping["ldap_group"])
        search = f"(&{config.user_filter}{in_chain})"
        ids = set()
        for item in d.paged_search(config.user_base_dn, search, [config.id_attribute],
                                   config.page_size, deadline=deadline):
            sid = directory.stable_id(item.get("raw_attributes") or {}, config.id_attribute)
            if sid:
                ids.add(sid)
        snap.members[index] = ("ids", ids)


def _members_recursive(config: LdapConfig, d: Directory, snap: Snapshot, deadline) -> None:
    """Every group read once; mapped groups expanded through nested groups, cycle-safe."""
    member_attr = config.group_member_attribute
    graph: dict[str, list[str]] = {}
    for item in d.paged_search(config.group_base_dn, config.group_filter, [member_attr],
                               config.page_size, deadline=deadline):
        members = directory.all_text(item.get("raw_attributes") or {}, member_attr)
        graph[directory.normalize_dn(item["dn"])] = [
            directory.normalize_dn(UNIQUE_MEMBER_UID.sub("", m)) for m in members]
    for index, mapping in enumerate(config.group_mappings):
        start = directory.normalize_dn(mapping["ldap_group"])
        if start not in graph:
            snap.members[index] = None
            continue
        users, seen, stack = set(), set(), [start]
        while stack:  # each group is expanded once: a cycle ends at the visited set
            group = stack.pop()
            if group in seen:
                continue
            seen.add(group)
            for member in graph[group]:
                if member in graph:
                    stack.append(member)
                else:
                    users.add(_hash(member))
        snap.members[index] = ("dns", users)


def _hash(normalized_dn: str) -> str:
    return hashlib.sha256(normalized_dn.encode("utf-8")).hexdigest()


# --- planning --------------------------------------------------------------------------------


def _valid_email(email: str) -> bool:
    return (len(email) <= 254 and "@" in email and not any(c in email for c in "\r\n\x00")
            and " " not in email)


def plan(config: LdapConfig, snap: Snapshot) -> Plan:
    p = Plan(errors=list(snap.errors))
    accounts = {row.directory_id: row for row in db.session.execute(
        select(LdapAccount.user_id, LdapAccount.directory_id, LdapAccount.dn,
               LdapAccount.dn_hash, LdapAccount.phone, LdapAccount.department,
               LdapAccount.title, LdapAccount.manager_dn, LdapAccount.deactivated_reason,
               User.username, User.email, User.display_name, User.active, User.role,
               User.manager_id)
        .join(User, User.id == LdapAccount.user_id))}
    taken = {name.lower(): uid for uid, name in db.session.execute(
        select(User.id, User.username))}
    by_user_id = {row.user_id: sid for sid, row in accounts.items()}
    p.who = {sid: (row.dn, row.username) for sid, row in accounts.items()}
    seen_names: dict[str, str] = {}
    valid: dict[str, Entry] = {}
    def error(entry: Entry, reason: str) -> None:
        p.errors.append((entry.dn, entry.username[:150], reason))
        p.errored.add(entry.directory_id)

    for entry in snap.entries:
        if entry.problem:
            error(entry, entry.problem)
            continue
        if not entry.username:
            error(entry, _("No %(attr)s (the username): skipped.",
                           attr=(config.attributes or {}).get("username")))
            continue
        if not identity.USERNAME_RE.match(entry.username):
            error(entry, _("The username %(name)s is not one servicedesk accepts (1-150 "
                           "letters, digits or . @ + - _): skipped.",
                           name=repr(entry.username[:150])))
            continue
        key = entry.username.lower()
        if key in seen_names:
            error(entry, _("Another directory entry has the username %(name)s: neither is "
                           "trusted with it until one is renamed.", name=repr(entry.username)))
            other = valid.pop(seen_names[key], None)
            if other is not None:
                error(other, _("Another directory entry has the username %(name)s: neither "
                               "is trusted with it until one is renamed.",
                               name=repr(other.username)))
            continue
        seen_names[key] = entry.directory_id
        if entry.email and not _valid_email(entry.email):
            error(entry, _("The e-mail address %(email)s is not valid: the user is kept "
                           "without one.", email=repr(entry.email[:254])))
            entry.email = ""
        entry.disabled = entry.disabled or entry.directory_id in snap.disabled_ids
        valid[entry.directory_id] = entry

    for sid, entry in valid.items():
        row = accounts.get(sid)
        p.who[sid] = (entry.dn, entry.username)
        if row is None:
            _plan_new(p, entry, taken, by_user_id)
        else:
            _plan_existing(p, entry, row, taken)

    # Gone from the directory (or out of the filter / base): deactivate, never delete.
    for sid, row in accounts.items():
        if sid in snap.present_ids:
            continue
        if row.active:
            p.deactivations[sid] = "missing"
            p.who[sid] = (row.dn, row.username)
        elif row.deactivated_reason == "disabled":
            p.quiet_reasons[sid] = "missing"
    # Directory ids present but whose entries were not read this time (incremental) and
    # are disabled now: the disabled filter names them.
    for sid in snap.disabled_ids:
        row = accounts.get(sid)
        if sid not in valid and row is not None and row.active:
            p.deactivations[sid] = "disabled"
            p.who[sid] = (row.dn, row.username)

    _plan_groups_roles_managers(config, snap, p, accounts, valid)
    return p


def _plan_new(p: Plan, entry: Entry, taken: dict, by_user_id: dict) -> None:
    if entry.disabled:
        return  # nobody to create for a disabled account
    owner = taken.get(entry.username.lower())
    if owner is not None:
        if owner == NEW or owner in by_user_id:
            reason = _("The username %(name)s belongs to another directory user (a different "
                       "stable id: deleted and re-created in the directory?); not merged.",
                       name=repr(entry.username))
        else:
            reason = _("The username %(name)s belongs to a local servicedesk user; not "
                       "merged. Rename one of them.", name=repr(entry.username))
        p.errors.append((entry.dn, entry.username, reason))
        p.errored.add(entry.directory_id)
        return
    taken[entry.username.lower()] = NEW
    p.creates.append(entry)


def _plan_existing(p: Plan, entry: Entry, row, taken: dict) -> None:
    sid = entry.directory_id
    user_changes, account_changes, notes = {}, {}, p.notes[sid]
    if entry.username != row.username:
        owner = taken.get(entry.username.lower())
        if owner is not None and owner != row.user_id:
            p.errors.append((entry.dn, entry.username, _(
                "Renamed to %(new)s in the directory, but %(new)s is taken by another user: "
                "kept as %(old)s.", new=repr(entry.username), old=repr(row.username))))
            p.errored.add(sid)
        else:
            user_changes["username"] = entry.username
            taken[entry.username.lower()] = row.user_id
            notes.append(_("username %(old)s → %(new)s", old=row.username, new=entry.username))
    if entry.email != row.email:
        user_changes["email"] = entry.email
        notes.append(_("e-mail %(old)s → %(new)s", old=row.email or "—", new=entry.email or "—"))
    display = entry.display_name or entry.username
    if display != row.display_name:
        user_changes["display_name"] = display
        notes.append(_("name %(old)s → %(new)s", old=row.display_name, new=display))
    if entry.dn_hash != row.dn_hash or entry.dn != row.dn:
        account_changes.update(dn=entry.dn, dn_hash=entry.dn_hash)
        notes.append(_("moved from %(old)s", old=row.dn))
    for key, label in (("phone", _("phone")), ("department", _("department")),
                       ("title", _("title"))):
        if getattr(entry, key) != getattr(row, key):
            account_changes[key] = getattr(entry, key)
            notes.append(label)
    if entry.manager_dn != row.manager_dn:
        account_changes["manager_dn"] = entry.manager_dn
    if user_changes:
        p.user_updates[sid] = user_changes
    if account_changes:
        p.account_updates[sid] = account_changes
    if entry.disabled:
        if row.active:
            p.deactivations[sid] = "disabled"
        elif row.deactivated_reason == "missing":
            p.quiet_reasons[sid] = "disabled"
    elif not row.active and row.deactivated_reason in ("missing", "disabled"):
        p.reactivations.append(sid)


def _plan_groups_roles_managers(config: LdapConfig, snap: Snapshot, p: Plan, accounts: dict,
                                valid: dict[str, Entry]) -> None:
    # The state every directory user ends in: the entry read now, else the stored one.
    final_hash = {sid: row.dn_hash for sid, row in accounts.items()}
    manager_dn = {sid: row.manager_dn for sid, row in accounts.items()}
    for entry in p.creates:
        final_hash[entry.directory_id] = entry.dn_hash
        manager_dn[entry.directory_id] = entry.manager_dn
    for sid, entry in valid.items():
        if sid in accounts:
            final_hash[sid] = entry.dn_hash
            manager_dn[sid] = entry.manager_dn
    by_hash = {h: sid for sid, h in final_hash.items()}
    everyone = set(final_hash)
    new_ids = {e.directory_id for e in p.creates}

    members_of: dict[int, set[str]] = {}
    for index, mapping in enumerate(config.group_mappings or []):
        found = snap.members.get(index)
        if found is None:
            p.errors.append((mapping["ldap_group"], "", _(
                "The mapped group was not found under the group base with the group filter: "
                "memberships and roles it gives were left as they were.")))
            continue
        kind, values = found
        if kind == "ids":
            members_of[index] = values & everyone
        else:
            members_of[index] = {by_hash[h] for h in values if h in by_hash}

    mappings = config.group_mappings or []
    # Groups: each mapped servicedesk group holds exactly the directory users its mapped
    # directory groups hold (local members are left alone). A mapping whose directory
    # group was not found freezes its servicedesk group.
    group_ids = dict(db.session.execute(select(Group.name, Group.id).where(
        Group.name.in_({m["group"] for m in mappings if m.get("group")}))).all())
    frozen = {m["group"] for i, m in enumerate(mappings) if m.get("group") and i not in members_of}
    user_to_sid = {row.user_id: sid for sid, row in accounts.items()}
    current: dict[int, set[str]] = defaultdict(set)
    if group_ids:
        for gid, uid in db.session.execute(
                select(group_members.c.group_id, group_members.c.user_id)
                .where(group_members.c.group_id.in_(group_ids.values()))):
            if uid in user_to_sid:
                current[gid].add(user_to_sid[uid])
    names = {gid: name for name, gid in group_ids.items()}
    for name, gid in group_ids.items():
        if name in frozen:
            continue
        wanted = set()
        for index, mapping in enumerate(mappings):
            if mapping.get("group") == name and index in members_of:
                wanted |= members_of[index]
        for sid in sorted(wanted - current[gid]):
            p.group_adds.append((gid, sid))
            p.notes[sid].append(_("joined %(group)s", group=names[gid]))
        for sid in sorted(current[gid] - wanted):
            p.group_removes.append((gid, sid))
            p.notes[sid].append(_("left %(group)s", group=names[gid]))

    # Roles: managed only when a mapping names one; the highest role of a user's mapped
    # groups, else the default. A role mapping whose group was not found freezes roles.
    role_mappings = [i for i, m in enumerate(mappings) if m.get("role")]
    if role_mappings and all(i in members_of for i in role_mappings):
        desired = {sid: config.default_role for sid in everyone}
        for index in role_mappings:
            role = mappings[index]["role"]
            for sid in members_of[index]:
                if ROLE_RANK[role] > ROLE_RANK[desired[sid]]:
                    desired[sid] = role
        for sid, role in desired.items():
            now = accounts[sid].role if sid in accounts else None
            if role != now:
                p.roles[sid] = role
                if sid not in new_ids:
                    p.notes[sid].append(_("role %(old)s → %(new)s", old=now, new=role))
    elif not role_mappings:
        for entry in p.creates:
            p.roles[entry.directory_id] = config.default_role

    # Managers: from the manager DN, to whichever directory user has that DN now.
    if (config.attributes or {}).get("manager"):
        for sid in everyone:
            target_dn = manager_dn.get(sid) or ""
            target = by_hash.get(directory.dn_hash(target_dn)) if target_dn else None
            if target == sid:
                target = None
            row = accounts.get(sid)
            current = user_to_sid.get(row.manager_id) if row is not None else None
            if row is not None and row.manager_id is not None and current is None \
                    and target is None:
                continue  # a manager from outside the directory, set by hand: kept
            if target != current:
                p.managers[sid] = target
                p.notes[sid].append(_("manager → %(name)s", name=_name_of(target, p, accounts)))


def _name_of(sid: str | None, p: Plan, accounts: dict) -> str:
    if sid is None:
        return "—"
    if sid in p.who:
        return p.who[sid][1]
    return accounts[sid].username if sid in accounts else "—"


# --- the run --------------------------------------------------------------------------------


def run(config: LdapConfig, report: LdapSyncReport, token: str | None) -> LdapSyncReport:
    """Read, plan, guard and (unless dry) apply; the report says what happened."""
    from servicedesk.ldap import service

    state = service.state_row()
    # No transaction may stay open while the directory is read (seconds to minutes): on
    # SQLite it would hold the write lock every other writer waits for.
    db.session.commit()
    try:
        snap = read_directory(config, state, report.full_requested)
    except DirectoryError as exc:
        return service.finish(report, "failed", _(
            "The directory could not be read completely, so nothing was changed: %(error)s",
            error=exc.message))
    if snap.mode == "incremental" and _reappearing(snap):
        # Back in the directory without a change of their own (e.g. a filter widened
        # again): only a full read tells whether they are enabled.
        db.session.commit()
        try:
            snap = read_directory(config, state, True)
        except DirectoryError as exc:
            return service.finish(report, "failed", _(
                "The directory could not be read completely, so nothing was changed: "
                "%(error)s", error=exc.message))
    report.server, report.mode = snap.server, snap.mode
    report.directory_users = len(snap.present_ids)
    p = plan(config, snap)
    _count(report, p, snap)
    active = db.session.scalar(select(func.count()).select_from(LdapAccount)
                               .join(User, User.id == LdapAccount.user_id)
                               .where(User.active.is_(True))) or 0
    limit = active * config.max_deactivate_percent / 100
    if len(p.deactivations) > limit and not report.allow_mass_deactivation:
        _store_items(report, p)
        return service.finish(report, "aborted", _(
            "Aborted, nothing was changed: this sync would deactivate %(count)s of %(active)s "
            "active directory users (%(share)s %%), more than the configured limit of "
            "%(limit)s %%. Check the directory, the base DN and the filters; if it is right, "
            "run the sync allowing mass deactivation or raise the limit.",
            count=len(p.deactivations), active=active,
            share=round(100 * len(p.deactivations) / max(active, 1), 1),
            limit=config.max_deactivate_percent))
    if report.dry_run:
        _store_items(report, p)
        return service.finish(report, "ok", _("Dry run: nothing was changed."))
    try:
        _apply(config, p, token)
    except service.LockLost:
        db.session.rollback()
        return service.finish(report, "failed", _(
            "The sync lock was taken over by another run; this one stopped part-way "
            "(what it committed is consistent; run the sync again)."))
    state = service.state_row()
    state.watermark = snap.watermark
    state.watermark_server = snap.server
    state.watermark_config_version = config.version
    if snap.mode == "full":
        state.last_full_at = utcnow()
    _store_items(report, p)
    return service.finish(report, "ok", "")


def _reappearing(snap: Snapshot) -> bool:
    missing = set(db.session.scalars(select(LdapAccount.directory_id).where(
        LdapAccount.deactivated_reason == "missing")))
    return bool((missing & snap.present_ids) - {e.directory_id for e in snap.entries})


def _count(report: LdapSyncReport, p: Plan, snap: Snapshot) -> None:
    created = {e.directory_id for e in p.creates}
    deactivated = set(p.deactivations)
    reactivated = set(p.reactivations)
    updated = {sid for sid, notes in p.notes.items() if notes} - created - deactivated \
        - reactivated
    report.created, report.deactivated = len(created), len(deactivated)
    report.reactivated, report.updated = len(reactivated), len(updated)
    report.errors = len(p.errors)
    touched = created | deactivated | reactivated | updated | p.errored
    report.unchanged = len(snap.present_ids - touched)


def _apply(config: LdapConfig, p: Plan, token: str | None) -> None:
    from servicedesk.ldap import service

    def beat():
        if token is not None:
            service.heartbeat(token)
        db.session.commit()

    uid = {sid: user_id for sid, user_id in db.session.execute(
        select(LdapAccount.directory_id, LdapAccount.user_id))}
    now = utcnow()
    for start in range(0, len(p.creates), BATCH):
        chunk = p.creates[start:start + BATCH]
        # One multi-row INSERT ... RETURNING per batch (not the unit of work: 20,000 ORM
        # objects cost more than the rest of a sync).
        user_ids = db.session.scalars(
            insert(User).returning(User.id, sort_by_parameter_order=True),
            [{"username": e.username, "email": e.email,
              "display_name": e.display_name or e.username, "locale": "en", "timezone": "UTC",
              "role": p.roles.get(e.directory_id, config.default_role), "active": True,
              "auth_source": "ldap", "password_hash": None, "session_epoch": 0,
              "created_at": now} for e in chunk]).all()
        db.session.execute(insert(LdapAccount), [
            {"user_id": user_id, "directory_id": e.directory_id, "dn": e.dn,
             "dn_hash": e.dn_hash, "phone": e.phone, "department": e.department,
             "title": e.title, "manager_dn": e.manager_dn, "deactivated_reason": None,
             "synced_at": now}
            for user_id, e in zip(user_ids, chunk, strict=True)])
        for user_id, e in zip(user_ids, chunk, strict=True):
            uid[e.directory_id] = user_id
        beat()
    _bulk(User, [{"id": uid[sid], **changes} for sid, changes in p.user_updates.items()], beat)
    _bulk(LdapAccount, [{"user_id": uid[sid], **changes, "synced_at": now}
                        for sid, changes in p.account_updates.items()], beat)
    new_ids = {e.directory_id for e in p.creates}
    _bulk(User, [{"id": uid[sid], "role": role} for sid, role in p.roles.items()
                 if sid not in new_ids], beat)
    for start in range(0, len(p.group_adds), BATCH):
        db.session.execute(insert(group_members), [
            {"group_id": gid, "user_id": uid[sid]}
            for gid, sid in p.group_adds[start:start + BATCH]])
        beat()
    removes = defaultdict(list)
    for gid, sid in p.group_removes:
        removes[gid].append(uid[sid])
    for gid, user_ids in removes.items():
        for start in range(0, len(user_ids), BATCH):
            db.session.execute(delete(group_members).where(
                group_members.c.group_id == gid,
                group_members.c.user_id.in_(user_ids[start:start + BATCH])))
            beat()
    _bulk(User, [{"id": uid[sid], "manager_id": uid.get(target) if target else None}
                 for sid, target in p.managers.items()], beat)
    _bulk(LdapAccount, [{"user_id": uid[sid], "deactivated_reason": reason}
                        for sid, reason in p.quiet_reasons.items()], beat)
    # Last, one user at a time through the identity service (it commits): sessions and
    # API tokens end with the deactivation, in the same transaction.
    for sid, reason in p.deactivations.items():
        if token is not None:
            service.heartbeat(token)
        db.session.execute(update(LdapAccount).where(LdapAccount.user_id == uid[sid])
                           .values(deactivated_reason=reason)
                           .execution_options(synchronize_session=False))
        identity.deactivate_user(None, db.session.get(User, uid[sid]))
    for sid in p.reactivations:
        if token is not None:
            service.heartbeat(token)
        db.session.execute(update(LdapAccount).where(LdapAccount.user_id == uid[sid])
                           .values(deactivated_reason=None)
                           .execution_options(synchronize_session=False))
        identity.activate_user(None, db.session.get(User, uid[sid]))
    db.session.commit()


def _bulk(model, rows: list[dict], beat) -> None:
    for start in range(0, len(rows), BATCH):
        db.session.execute(update(model), rows[start:start + BATCH])
        beat()


def _store_items(report: LdapSyncReport, p: Plan) -> None:
    rows = []
    for entry in p.creates:
        sid = entry.directory_id
        details = [_("role %(role)s", role=p.roles.get(sid, "")), *p.notes.get(sid, [])]
        rows.append(("created", entry.dn, entry.username, "; ".join(details)))
    created = {e.directory_id for e in p.creates}
    deactivated = p.deactivations
    for sid, reason in p.deactivations.items():
        dn, username = p.who[sid]
        text = _("disabled in the directory") if reason == "disabled" else \
            _("no longer in the directory (or outside the base DN and filter)")
        rows.append(("deactivated", dn, username, text))
    for sid in p.reactivations:
        dn, username = p.who[sid]
        notes = "; ".join(p.notes.get(sid, []))
        rows.append(("reactivated", dn, username,
                     _("back in the directory") + (f"; {notes}" if notes else "")))
    for sid, notes in p.notes.items():
        if notes and sid not in created and sid not in deactivated and sid not in p.reactivations:
            dn, username = p.who.get(sid, ("", ""))
            rows.append(("updated", dn, username, "; ".join(notes)))
    for dn, username, reason in p.errors:
        rows.append(("error", dn, username, reason))
    db.session.commit()  # the report's counts first, in case the items are many
    for start in range(0, len(rows), 2000):
        db.session.execute(insert(LdapSyncItem), [
            {"report_id": report.id, "action": a, "dn": dn or "", "username": (u or "")[:150],
             "detail": d} for a, dn, u, d in rows[start:start + 2000]])
        db.session.commit()


# --- the connection test -----------------------------------------------------------------------


def test_directory(config: LdapConfig) -> dict:
    steps: list[dict] = []
    warnings: list[str] = []

    def step(name: str, ok: bool, detail: str) -> None:
        steps.append({"step": name, "ok": ok, "detail": detail})

    if config.security == "plain":
        warnings.append(_("No TLS: the bind password and every user's password cross the "
                          "network in clear text. For test directories only."))
    elif not config.tls_verify:
        warnings.append(_("Certificate validation is off: the connection is encrypted but "
                          "anyone in the path can pretend to be the server. For test "
                          "directories only."))
    server = None
    try:
        with Directory(Settings.from_config(config)) as d:
            server = d.server_uri
            tls = {"ldaps": _("LDAPS"), "starttls": _("StartTLS"), "plain": _("no TLS")}[
                config.security]
            step("connect", True, _("Connected to %(server)s (%(tls)s) and bound as %(who)s.",
                                    server=server, tls=tls,
                                    who=config.bind_dn or _("anonymous")))
            dse = d.root_dse()
            is_ad = directory.AD_CAPABILITY_OID in dse.get("supportedCapabilities", [])
            vendor = " ".join(dse.get("vendorName", []) + dse.get("vendorVersion", [])) or (
                "Active Directory" if is_ad else "OpenLDAP"
                if "OpenLDAProotDSE" in dse.get("objectClass", []) else _("unknown vendor"))
            step("server", True, _("Server: %(vendor)s.", vendor=vendor))
            if config.flavour == "ad" and not is_ad:
                warnings.append(_("The flavour is Active Directory but the server does not "
                                  "say it is one: nested groups will be resolved by reading "
                                  "the groups instead of AD's in-chain rule."))
            if config.flavour != "ad" and is_ad:
                warnings.append(_("The server is Active Directory: the Active Directory "
                                  "preset fits it better."))
            _test_users(config, d, step)
            _test_groups(config, d, step)
    except DirectoryError as exc:
        step("connect", False, exc.message)
    return {"ok": all(s["ok"] for s in steps), "server": server, "steps": steps,
            "warnings": warnings}


def _test_users(config: LdapConfig, d: Directory, step) -> None:
    if not d.exists(config.user_base_dn):
        step("users", False, _("The user base %(dn)s does not exist or cannot be read.",
                               dn=config.user_base_dn))
        return
    sample, count = None, 0
    try:
        for item in d.paged_search(config.user_base_dn, config.user_filter,
                                   _user_attributes(config), config.page_size):
            count += 1
            sample = sample or item
            if count >= config.page_size:
                break
    except DirectoryError as exc:
        step("users", False, exc.message)
        return
    if count == 0:
        step("users", False, _("No user matches %(filter)s under %(dn)s.",
                               filter=config.user_filter, dn=config.user_base_dn))
        return
    more = _(" (at least; the test reads one page)") if count >= config.page_size else ""
    step("users", True, _("%(count)s users found%(more)s.", count=count, more=more))
    errors: list = []
    entry = _entry(config, sample, errors)
    if entry is None or not entry.username:
        step("mapping", False, errors[0][2] if errors else _(
            "The first user %(dn)s has no %(attr)s (the username attribute).",
            dn=sample.get("dn"), attr=(config.attributes or {}).get("username")))
        return
    step("mapping", True, _("First user: %(dn)s → username %(username)s, e-mail %(email)s, "
                            "name %(name)s, id %(id)s.", dn=entry.dn, username=entry.username,
                            email=entry.email or "—", name=entry.display_name or "—",
                            id=entry.directory_id))


def _test_groups(config: LdapConfig, d: Directory, step) -> None:
    if not config.group_base_dn:
        return
    if not d.exists(config.group_base_dn):
        step("groups", False, _("The group base %(dn)s does not exist or cannot be read.",
                                dn=config.group_base_dn))
        return
    missing = [m["ldap_group"] for m in config.group_mappings or []
               if not d.exists(m["ldap_group"])]
    if missing:
        step("groups", False, _("Mapped groups not found: %(dns)s.", dns="; ".join(missing)))
    else:
        step("groups", True, _("The group base and all %(count)s mapped groups exist.",
                               count=len(config.group_mappings or [])))
