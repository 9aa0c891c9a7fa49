"""Configuration items and their relations: read, create, change, audit.

Every function takes the acting user (``None``: the system) and checks it through
cmdb.access; every write validates the CI against its class (cmdb.attributes), records
each change as CI history in the same transaction, and commits once. References to CIs
in input are an id (int) or an external key (str).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import and_, false, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from cmdb import access
from cmdb.attributes import MAX_ID, Reference, coerce, display, validate
from cmdb.classes import Catalog, sync_plugin_classes
from cmdb.models import (
    RELATION_TYPES,
    STATUSES,
    CIClass,
    CIHistory,
    ConfigurationItem,
    Relation,
)
from servicedesk.errors import Conflict, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import Group, User
from servicedesk.types import utcnow

CI = ConfigurationItem
CI_FIELDS = ("name", "class", "status", "owner_group", "description", "attributes",
             "external_key")
MAX_REFS = 1000


# --- history -------------------------------------------------------------------------


def history_row(ci_id: int, actor: User | None, action: str, field: str | None = None,
                old=None, new=None, at: datetime | None = None) -> dict:
    return {"ci_id": ci_id, "actor_id": actor.id if actor is not None else None,
            "at": at or utcnow(), "action": action, "field": field,
            "old_value": None if old is None else str(old),
            "new_value": None if new is None else str(new)}


def record(ci: CI, actor: User | None, action: str, field: str | None = None, old=None,
           new=None, at: datetime | None = None) -> None:
    db.session.add(CIHistory(**history_row(ci.id, actor, action, field, old, new, at)))


def _label(ci: CI) -> str:
    return f"{ci.name} (#{ci.id})"


# --- lookups -------------------------------------------------------------------------


def get_ci(actor: User | None, ci_id: int) -> CI:
    access.check_read(actor)
    ci = None
    if isinstance(ci_id, int) and 1 <= ci_id <= MAX_ID:
        ci = db.session.scalars(select(CI).where(CI.id == ci_id).options(
            joinedload(CI.ci_class), joinedload(CI.owner_group))).one_or_none()
    if ci is None:
        raise NotFound(_("No configuration item %(id)s.", id=ci_id))
    return ci


def find_cis(refs, light: bool = False) -> dict:
    """{ref: CI} for the refs (ids and external keys) that exist; one query per 500.

    ``light``: plain rows (``id``, ``name``, ``external_key``, ``class_id``) instead of
    ORM objects, for the import's thousands of references."""
    ids = sorted({r for r in refs if isinstance(r, int) and not isinstance(r, bool)
                  and 1 <= r <= MAX_ID})
    keys = sorted({r for r in refs if isinstance(r, str)})
    found = {}
    for chunk_ids, chunk_keys in _chunks(ids, keys, 500):
        chunk_ids, chunk_keys = set(chunk_ids), set(chunk_keys)
        clauses = []
        if chunk_ids:
            clauses.append(CI.id.in_(chunk_ids))
        if chunk_keys:
            clauses.append(CI.external_key.in_(chunk_keys))
        query = (select(CI.id, CI.name, CI.external_key, CI.class_id) if light
                 else select(CI)).where(or_(*clauses))
        for ci in (db.session.execute(query) if light else db.session.scalars(query)):
            if ci.id in chunk_ids:
                found[ci.id] = ci
            if ci.external_key is not None and ci.external_key in chunk_keys:
                found[ci.external_key] = ci
    return found


def _chunks(ids: list, keys: list, size: int):
    for start in range(0, max(len(ids), len(keys)), size):
        yield ids[start:start + size], keys[start:start + size]


def resolve_refs(refs: list, field: str) -> list[CI]:
    """The CIs ``refs`` name, in order, without repeats; unknown ones are a 422 naming
    ``field`` and each unknown reference."""
    if len(refs) > MAX_REFS:
        raise ValidationError(_("At most %(n)s configuration items.", n=MAX_REFS),
                              fields={field: [_("Too many.")]})
    found = find_cis(refs)
    unknown = [r for r in refs if r not in found]
    if unknown:
        raise ValidationError(
            _("No configuration item %(refs)s.", refs=", ".join(repr(r) for r in unknown)),
            fields={field: [_("Unknown CI %(ref)s.", ref=repr(r)) for r in unknown]})
    result, seen = [], set()
    for ref in refs:
        ci = found[ref]
        if ci.id not in seen:
            seen.add(ci.id)
            result.append(ci)
    return result


# --- validation shared by the API and the import --------------------------------------


class Checker:
    """Validates CI payloads against the class model; caches classes and groups, so an
    import of thousands of rows costs no query per row for them."""

    def __init__(self, catalog: Catalog | None = None):
        self.catalog = catalog or Catalog.load()
        self._groups: dict[str, Group | None] = {}

    def group(self, name: str) -> Group | None:
        if name not in self._groups:
            self._groups[name] = db.session.scalars(
                select(Group).where(Group.name == name)).one_or_none()
        return self._groups[name]

    def check(self, data: dict, current: CI | None = None, from_text: bool = False):
        """(values, references, errors) of a create (``current`` None) or change.

        ``values`` holds the model fields to set (``ci_class``, ``owner_group``...) and
        the complete new ``attributes`` (a change merges the given attributes into the
        current ones; ``null`` removes one) without the references, which are in
        ``references`` ({attribute: Reference}) for :meth:`resolve`.
        """
        errors: dict[str, list[str]] = {}
        values: dict = {}
        if "name" in data:
            name = data["name"].strip() if isinstance(data["name"], str) else ""
            if not 0 < len(name) <= 200:
                errors["name"] = [_("A name of 1 to 200 characters.")]
            values["name"] = name
        elif current is None:
            errors["name"] = [_("Missing data for required field.")]
        ci_class = current.ci_class if current is not None else None
        if "class" in data:
            ci_class = self.catalog.by_key.get(data["class"]) \
                if isinstance(data["class"], str) else None
            if ci_class is None:
                errors["class"] = [_("No such class.")]
            values["ci_class"] = ci_class
        elif current is None:
            errors["class"] = [_("Missing data for required field.")]
        if "status" in data:
            if data["status"] not in STATUSES:
                errors["status"] = [_("One of: %(values)s.", values=", ".join(STATUSES))]
            values["status"] = data["status"]
        if "owner_group" in data:
            owner = data["owner_group"]
            if owner in (None, ""):
                values["owner_group"] = None
            elif not isinstance(owner, str) or len(owner) > 150 or self.group(owner) is None:
                errors["owner_group"] = [_("Unknown group.")]
            else:
                values["owner_group"] = self.group(owner)
        if "description" in data:
            if not isinstance(data["description"], str) or len(data["description"]) > 50_000:
                errors["description"] = [_("Text of at most 50000 characters.")]
            values["description"] = data["description"]
        if "external_key" in data:
            key = data["external_key"]
            if isinstance(key, str):
                key = key.strip() or None
            if key is not None and (not isinstance(key, str) or len(key) > 200):
                errors["external_key"] = [_("Text of at most 200 characters, or null.")]
            values["external_key"] = key
        refs = {}
        if ci_class is not None:
            given = data.get("attributes", {}) if "attributes" in data else {}
            if not isinstance(given, dict):
                errors["attributes"] = [_("Not a valid object.")]
                given = {}
            attributes = dict(current.attributes or {}) if current is not None else {}
            attributes.update(given)
            clean, refs, attr_errors = validate(self.catalog.attributes(ci_class), attributes,
                                                ci_class.name, from_text)
            errors.update(attr_errors)
            values["attributes"] = clean
        return values, refs, errors

    def resolve(self, items: list[tuple[dict, dict, dict]]) -> None:
        """Resolve the references of several checked items at once (one query per 500):
        each (values, references, errors) gets its reference ids put into
        ``values["attributes"]``, or errors naming the attribute."""
        wanted = [ref.ref for _values, refs, _errors in items for ref in refs.values()]
        found = find_cis(wanted, light=True) if wanted else {}
        for values, refs, errors in items:
            ci_class = values.get("ci_class")
            defs = {d["name"]: d for d in self.catalog.attributes(ci_class)} if ci_class else {}
            for name, ref in refs.items():
                target = found.get(ref.ref)
                wanted_class = defs.get(name, {}).get("ci_class")
                if target is None:
                    errors[f"attributes.{name}"] = [_("No configuration item %(ref)s.",
                                                      ref=repr(ref.ref))]
                elif wanted_class and not self._is_a(target, wanted_class):
                    errors[f"attributes.{name}"] = [
                        _("Must be a CI of the class %(cls)s.",
                          cls=self.catalog.by_key[wanted_class].name
                          if wanted_class in self.catalog.by_key else wanted_class)]
                else:
                    values.setdefault("attributes", {})[name] = target.id

    def _is_a(self, ci: CI, class_key: str) -> bool:
        row = self.catalog.by_id.get(ci.class_id)
        return row is not None and self.catalog.is_a(row, class_key)


def _refuse(errors: dict) -> None:
    if errors:
        raise ValidationError(_("The configuration item has missing or invalid fields."),
                              fields=errors)


def _unique_key(key: str | None, current: CI | None) -> None:
    if key is None:
        return
    other = db.session.scalars(select(CI).where(CI.external_key == key)).one_or_none()
    if other is not None and other is not current:
        raise Conflict(_("The external key %(key)s belongs to %(ci)s.", key=repr(key),
                         ci=_label(other)),
                       fields={"external_key": [_("Already in use.")]}, code="duplicate_key")


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(_("Someone else changed this configuration item at the same moment; "
                         "reload and retry."), fields={"version": [_("Stale.")]},
                       code="stale_version") from None
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_("The change conflicts with existing data (an external key or "
                         "relation that now exists)."), code="integrity") from None


# --- CIs -----------------------------------------------------------------------------


def create_ci(actor: User | None, data: dict) -> CI:
    access.check_edit(actor)
    sync_plugin_classes()
    checker = Checker()
    values, refs, errors = checker.check(data)
    _refuse(errors)
    checker.resolve([(values, refs, errors)])
    _refuse(errors)
    _unique_key(values.get("external_key"), None)
    now = utcnow()
    ci = CI(name=values["name"], ci_class=values["ci_class"],
            status=values.get("status", "in_use"), owner_group=values.get("owner_group"),
            description=values.get("description", ""), attributes=values["attributes"],
            external_key=values.get("external_key"), created_at=now, updated_at=now)
    db.session.add(ci)
    db.session.flush()
    record(ci, actor, "created", None, None, ci.name, now)
    _commit()
    return ci


def _check_version(ci: CI, version) -> None:
    if version is None:
        raise ValidationError(_("The version you last read is required."),
                              fields={"version": [_("Missing data for required field.")]})
    if version != ci.version:
        raise Conflict(
            _("%(ci)s was changed by someone else (version %(current)s, you sent %(sent)s); "
              "reload it and apply your change again.",
              ci=_label(ci), current=ci.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=ci.version)]},
            code="stale_version")


def apply(ci: CI, actor: User | None, values: dict, at: datetime) -> list[dict]:
    """Set ``values`` on ``ci``; the history rows of what really changed (not added)."""
    rows = []

    def change(field, old, new, attr, value):
        if old != new:
            setattr(ci, attr, value)
            rows.append(history_row(ci.id, actor, "updated", field, old, new, at))

    for field in ("name", "status", "description", "external_key"):
        if field in values:
            change(field, getattr(ci, field), values[field], field, values[field])
    if "ci_class" in values:
        change("class", ci.ci_class.key, values["ci_class"].key, "ci_class", values["ci_class"])
    if "owner_group" in values:
        old = ci.owner_group.name if ci.owner_group else None
        new = values["owner_group"].name if values["owner_group"] else None
        change("owner_group", old, new, "owner_group", values["owner_group"])
    if "attributes" in values:
        old_attrs, new_attrs = ci.attributes or {}, values["attributes"]
        for name in sorted(set(old_attrs) | set(new_attrs)):
            if old_attrs.get(name) != new_attrs.get(name):
                rows.append(history_row(ci.id, actor, "updated", f"attributes.{name}",
                                        _shown(old_attrs.get(name)),
                                        _shown(new_attrs.get(name)), at))
        if old_attrs != new_attrs:
            ci.attributes = dict(new_attrs)
    return rows


def _shown(value):
    return None if value is None else display(None, value)


def update_ci(actor: User | None, ci_id: int, data: dict) -> CI:
    """Change the fields given; ``attributes`` is merged (``null`` removes one) and the
    result validated against the (new) class; ``version`` must be the one read."""
    access.check_edit(actor)
    data = dict(data)
    version = data.pop("version", None)
    ci = get_ci(actor, ci_id)
    _check_version(ci, version)
    sync_plugin_classes()
    checker = Checker()
    values, refs, errors = checker.check(data, current=ci)
    _refuse(errors)
    checker.resolve([(values, refs, errors)])
    _refuse(errors)
    if "external_key" in values:
        _unique_key(values["external_key"], ci)
    rows = apply(ci, actor, values, utcnow())
    if rows:
        db.session.add_all(CIHistory(**row) for row in rows)
    _commit()
    return ci


def list_history(actor: User | None, ci_id: int) -> list[CIHistory]:
    ci = get_ci(actor, ci_id)
    return list(db.session.scalars(select(CIHistory).where(CIHistory.ci_id == ci.id)
                                   .options(joinedload(CIHistory.actor))
                                   .order_by(CIHistory.id)))


# --- listing -------------------------------------------------------------------------


def _encode_cursor(name: str, ci_id: int) -> str:
    raw = json.dumps([name, ci_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        name, ci_id = json.loads(raw)
        if not isinstance(name, str) or not isinstance(ci_id, int) or isinstance(ci_id, bool) \
                or not 0 <= ci_id <= MAX_ID or "\x00" in name:
            raise ValueError
        return name, ci_id
    except (ValueError, TypeError, UnicodeDecodeError):
        raise ValidationError(_("The cursor is not one this server handed out."),
                              fields={"cursor": [_("Invalid cursor.")]}) from None


def _attribute_filters(catalog: Catalog, ci_class: CIClass | None, specs: list[str]):
    """WHERE clauses for ``name:value`` attribute filters; names from the class only."""
    if not specs:
        return []
    if ci_class is None:
        raise ValidationError(_("Filtering by attribute needs a class."),
                              fields={"attr": [_("Give class= too.")]})
    defs = {d["name"]: d for d in catalog.attributes(ci_class)}
    clauses, errors = [], []
    for spec in specs:
        name, sep, raw = spec.partition(":")
        defn = defs.get(name)
        if not sep or defn is None:
            errors.append(_("%(spec)s: not name:value with a name of the class %(cls)s.",
                            spec=spec[:80], cls=ci_class.name))
            continue
        try:
            value = coerce(defn, raw, from_text=True)
        except ValueError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if isinstance(value, Reference):
            # Text names a CI by external key, or else (digits) by id.
            refs = [value.ref] + ([int(value.ref)] if value.ref.isascii()
                                  and value.ref.isdigit() else [])
            found = find_cis(refs)
            target = next((found[r] for r in refs if r in found), None)
            value = target.id if target else 0
        clauses.append(_attribute_equals(name, value))
    if errors:
        raise ValidationError(_("The attribute filter is not valid."), fields={"attr": errors})
    return clauses


def _attribute_equals(name: str, value):
    """``attributes[name] = value`` (a stored, canonical value).

    PostgreSQL compares the value's JSON text (``->>``): a cast (``::integer``) would
    fail on the rows of another class whose attribute of that name holds text, and the
    planner may evaluate it before the class filter. SQLite compares the extracted
    value, typed as stored (a cast never fails there).
    """
    element = CI.attributes[name]
    if db.session.get_bind().dialect.name == "postgresql":
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return element.as_string() == text
    if isinstance(value, bool):
        return element.as_boolean() == (true() if value else false())
    if isinstance(value, int):
        return element.as_integer() == value
    return element.as_string() == value


def list_cis(actor: User | None, filters: dict, cursor: str | None = None, limit: int = 50):
    """CIs by name, filtered; (rows, next_cursor). Filters: class (with its subclasses),
    status (list), owner_group, q (in the name), external_key, attr ("name:value"...)."""
    access.check_read(actor)
    catalog = Catalog.load()
    where = []
    ci_class = None
    if filters.get("class"):
        ci_class = catalog.by_key.get(filters["class"])
        if ci_class is None:
            raise ValidationError(_("No CI class %(key)s.", key=repr(filters["class"])),
                                  fields={"class": [_("No such class.")]})
        where.append(CI.class_id.in_(catalog.with_descendants_ids(ci_class)))
    if filters.get("status"):
        where.append(CI.status.in_(filters["status"]))
    if filters.get("owner_group"):
        group = Checker(catalog).group(filters["owner_group"])
        where.append(CI.owner_group_id == (group.id if group else 0))
    if filters.get("q"):
        where.append(func.lower(CI.name).contains(filters["q"].lower(), autoescape=True))
    if filters.get("external_key"):
        where.append(CI.external_key == filters["external_key"])
    where += _attribute_filters(catalog, ci_class, filters.get("attr") or [])
    if cursor:
        name, ci_id = _decode_cursor(cursor)
        where.append(or_(CI.name > name, and_(CI.name == name, CI.id > ci_id)))
    rows = list(db.session.scalars(
        select(CI).where(*where).options(joinedload(CI.ci_class), joinedload(CI.owner_group))
        .order_by(CI.name, CI.id).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].name, rows[-1].id)
    return rows, next_cursor


# --- relations -----------------------------------------------------------------------


def list_relations(actor: User | None, ci_id: int) -> tuple[list[Relation], list[Relation]]:
    """(outgoing, incoming) relations of the CI, each with the CI at the other end."""
    ci = get_ci(actor, ci_id)
    outgoing = list(db.session.scalars(
        select(Relation).where(Relation.source_id == ci.id)
        .options(joinedload(Relation.target).joinedload(CI.ci_class))
        .order_by(Relation.type, Relation.id)))
    incoming = list(db.session.scalars(
        select(Relation).where(Relation.target_id == ci.id)
        .options(joinedload(Relation.source).joinedload(CI.ci_class))
        .order_by(Relation.type, Relation.id)))
    return outgoing, incoming


def check_relation(source: CI, target: CI, type_) -> dict:
    """The reasons ``source type target`` cannot be, by field (empty if it can)."""
    errors = {}
    if type_ not in RELATION_TYPES:
        errors["type"] = [_("One of: %(types)s.", types=", ".join(RELATION_TYPES))]
    if source is not None and target is not None and source.id == target.id:
        errors["target"] = [_("A CI cannot be related to itself.")]
    return errors


def relation_history(relation: Relation, source: CI, target: CI, actor: User | None,
                     action: str, at: datetime) -> list[dict]:
    """History rows for both ends: the source "depends on X", the target "is needed
    by Y" (the type's inverse name)."""
    kind = RELATION_TYPES[relation.type]
    rows = []
    for ci, field, other in ((source, kind.key, target), (target, f"~{kind.key}", source)):
        old_new = (None, _label(other)) if action == "relation_added" else (_label(other), None)
        rows.append(history_row(ci.id, actor, action, field, *old_new, at))
    return rows


def create_relation(actor: User | None, data: dict) -> Relation:
    access.check_edit(actor)
    errors = {}
    found = find_cis([data.get("source"), data.get("target")])
    source, target = found.get(data.get("source")), found.get(data.get("target"))
    for field, ci in (("source", source), ("target", target)):
        if ci is None:
            errors[field] = [_("Unknown CI %(ref)s.", ref=repr(data.get(field)))]
    errors.update(check_relation(source, target, data.get("type")))
    if errors:
        raise ValidationError(_("The relation has missing or invalid fields."), fields=errors)
    clash = db.session.scalars(select(Relation).where(
        Relation.source_id == source.id, Relation.target_id == target.id,
        Relation.type == data["type"])).one_or_none()
    if clash is not None:
        raise Conflict(_("%(source)s already %(type)s %(target)s.", source=source.name,
                         type=_(RELATION_TYPES[data["type"]].name), target=target.name),
                       fields={"type": [_("This relation exists (id %(id)s).", id=clash.id)]},
                       code="duplicate_relation")
    relation = new_relation(source.id, target.id, data["type"], actor)
    db.session.add(relation)
    db.session.flush()
    db.session.add_all(CIHistory(**row) for row in relation_history(
        relation, source, target, actor, "relation_added", relation.created_at))
    _commit()
    relation.source, relation.target = source, target
    return relation


def new_relation(source_id: int, target_id: int, type_: str, actor: User | None) -> Relation:
    dependent, dependency = Relation.dependency_pair(source_id, target_id, type_)
    return Relation(source_id=source_id, target_id=target_id, type=type_,
                    dependent_id=dependent, dependency_id=dependency, created_at=utcnow(),
                    created_by_id=actor.id if actor is not None else None)


def delete_relation(actor: User | None, relation_id: int) -> None:
    access.check_edit(actor)
    relation = None
    if 1 <= relation_id <= MAX_ID:
        relation = db.session.scalars(select(Relation).where(Relation.id == relation_id).options(
            joinedload(Relation.source), joinedload(Relation.target))).one_or_none()
    if relation is None:
        raise NotFound(_("No relation %(id)s.", id=relation_id))
    db.session.add_all(CIHistory(**row) for row in relation_history(
        relation, relation.source, relation.target, actor, "relation_removed", utcnow()))
    db.session.delete(relation)
    _commit()
