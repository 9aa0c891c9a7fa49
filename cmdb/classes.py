"""CI classes: defined by admins (API), by servicedesk (seed) and by plugins (hook).

A class has a parent (its CIs also carry every attribute of the ancestors) and its own
typed attribute definitions. Classes are few (tens), so each operation loads them all
once into a :class:`Catalog` and works out inheritance in Python.

Plugin classes come from the ``servicedesk_ci_classes`` hook. They are written to the
table (so CIs can refer to them) by :func:`sync_plugin_classes`, which runs before
every CMDB change, from ``servicedesk cmdb sync-classes`` and from ``servicedesk demo``;
it is idempotent and writes nothing when nothing changed. Admins cannot edit them
(the plugin would undo it); a plugin class whose key an admin class already uses is
ignored, with a warning in the log.
"""

from __future__ import annotations

import logging

from flask_babel import gettext as _
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from cmdb import access
from cmdb.attributes import NAME, check_definitions
from cmdb.models import SERVICE_TYPES, CIClass, ConfigurationItem
from servicedesk.errors import Conflict, NotFound, ServiceError, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User

log = logging.getLogger(__name__)
MAX_DEPTH = 10  # of the class hierarchy
CLASS_FIELDS = ("key", "name", "parent", "description", "service_type", "attributes")


class Catalog:
    """Every class, by id and key, with inheritance worked out."""

    def __init__(self, rows: list[CIClass]):
        self.by_id = {row.id: row for row in rows if row.id is not None}
        self.by_key = {row.key: row for row in rows}

    @classmethod
    def load(cls) -> Catalog:
        return cls(list(db.session.scalars(select(CIClass).order_by(CIClass.name))))

    def add(self, row: CIClass) -> None:
        self.by_key[row.key] = row
        if row.id is not None:
            self.by_id[row.id] = row

    def parent_of(self, row: CIClass) -> CIClass | None:
        if row.parent_id is not None and row.parent_id in self.by_id:
            return self.by_id[row.parent_id]
        return row.__dict__.get("parent")  # set on a row not flushed yet

    def ancestors(self, row: CIClass) -> list[CIClass]:
        """Parent first, root last (bounded: the hierarchy is at most MAX_DEPTH deep)."""
        chain, seen = [], {row.key}
        current = self.parent_of(row)
        while current is not None and current.key not in seen and len(chain) < MAX_DEPTH + 1:
            chain.append(current)
            seen.add(current.key)
            current = self.parent_of(current)
        return chain

    def lineage(self, row: CIClass) -> list[str]:
        """Keys from the root down to ``row``."""
        return [c.key for c in reversed(self.ancestors(row))] + [row.key]

    def attributes(self, row: CIClass) -> list[dict]:
        """Every attribute of the class: inherited ones first (root first), then its own;
        inherited ones say where they come from (``inherited_from``)."""
        result = []
        for ancestor in reversed(self.ancestors(row)):
            result += [{**a, "inherited_from": ancestor.key} for a in ancestor.attributes or []]
        return result + [dict(a) for a in row.attributes or []]

    def descendants(self, row: CIClass) -> list[CIClass]:
        return [c for c in self.by_key.values() if c is not row and row in self.ancestors(c)]

    def with_descendants_ids(self, row: CIClass) -> list[int]:
        return [row.id] + [c.id for c in self.descendants(row) if c.id is not None]

    def service_type(self, row: CIClass) -> str | None:
        for c in [row] + self.ancestors(row):
            if c.service_type:
                return c.service_type
        return None

    def service_class_ids(self) -> dict[int, str]:
        """{class id: "business" | "technical"} of every class whose CIs are services."""
        return {c.id: t for c in self.by_id.values() if (t := self.service_type(c))}

    def is_a(self, row: CIClass, key: str) -> bool:
        return key in self.lineage(row)


# --- reading -------------------------------------------------------------------------


def list_classes(actor: User | None) -> tuple[list[CIClass], Catalog]:
    access.check_read(actor)
    catalog = Catalog.load()
    return sorted(catalog.by_key.values(), key=lambda c: c.name.lower()), catalog


def get_class(actor: User | None, key: str) -> tuple[CIClass, Catalog]:
    access.check_read(actor)
    catalog = Catalog.load()
    row = catalog.by_key.get(key)
    if row is None:
        raise NotFound(_("No CI class %(key)s.", key=repr(key)))
    return row, catalog


# --- writing -------------------------------------------------------------------------


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(_("Someone else changed this class at the same moment; reload and "
                         "retry."), fields={"version": [_("Stale.")]},
                       code="stale_version") from None
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_("A class with that key or name exists."),
                       fields={"key": [_("Already exists.")]}, code="duplicate") from None


def _check_fields(data: dict, catalog: Catalog, row: CIClass | None) -> dict:
    """Validated values of the class fields ``data`` gives (refusals name the field)."""
    errors: dict[str, list[str]] = {}
    values = {}
    if "key" in data:
        key = data["key"]
        if not isinstance(key, str) or not NAME.match(key):
            errors["key"] = [_("Lower-case letters, digits and _, starting with a letter "
                               "(at most 64).")]
        else:
            values["key"] = key
    if "name" in data:
        name = data["name"].strip() if isinstance(data["name"], str) else ""
        if not 0 < len(name) <= 120:
            errors["name"] = [_("A name of 1 to 120 characters.")]
        else:
            values["name"] = name
    if "description" in data:
        if not isinstance(data["description"], str) or len(data["description"]) > 5000:
            errors["description"] = [_("Text of at most 5000 characters.")]
        else:
            values["description"] = data["description"]
    if "service_type" in data:
        if data["service_type"] not in (None, *SERVICE_TYPES):
            errors["service_type"] = [_("One of: %(values)s, or null.",
                                        values=", ".join(SERVICE_TYPES))]
        else:
            values["service_type"] = data["service_type"]
    if "parent" in data:
        parent = None
        if data["parent"] is not None:
            parent = catalog.by_key.get(data["parent"]) if isinstance(data["parent"], str) \
                else None
            if parent is None:
                errors["parent"] = [_("No such class.")]
            elif row is not None and (parent is row or row in catalog.ancestors(parent)):
                errors["parent"] = [_("A class cannot be its own ancestor.")]
            elif len(catalog.ancestors(parent)) + 1 >= MAX_DEPTH:
                errors["parent"] = [_("Classes nest at most %(n)s deep.", n=MAX_DEPTH)]
        values["parent"] = parent
    if errors:
        raise ValidationError(_("The class has missing or invalid fields."), fields=errors)
    return values


def _inherited_names(catalog: Catalog, parent: CIClass | None) -> dict[str, str]:
    if parent is None:
        return {}
    return {a["name"]: c.name for c in [parent] + catalog.ancestors(parent)
            for a in c.attributes or []}


def _check_references(defs: list[dict], catalog: Catalog, own_key: str | None) -> None:
    errors = {}
    for i, d in enumerate(defs):
        target = d.get("ci_class")
        if target is not None and target not in catalog.by_key and target != own_key:
            errors[f"attributes[{i}].ci_class"] = [_("No such class.")]
    if errors:
        raise ValidationError(_("The attribute definitions are not valid."), fields=errors)


def _check_descendants(catalog: Catalog, row: CIClass, own: list[dict],
                       parent: CIClass | None) -> None:
    """No subclass may define an attribute this class (now) has."""
    names = set(_inherited_names(catalog, parent)) | {a["name"] for a in own}
    clashes = {}
    for child in catalog.descendants(row):
        for a in child.attributes or []:
            if a["name"] in names:
                clashes.setdefault("attributes", []).append(
                    _("%(name)s is already an attribute of the subclass %(cls)s.",
                      name=a["name"], cls=child.name))
    if clashes:
        raise ValidationError(_("The change clashes with a subclass."), fields=clashes)


def create_class(actor: User | None, data: dict, source: str = "admin") -> CIClass:
    access.check_model(actor)
    if source == "admin":
        sync_plugin_classes()
    catalog = Catalog.load()
    missing = [f for f in ("key", "name") if data.get(f) in (None, "")]
    if missing:
        raise ValidationError(_("A class needs a key and a name."),
                              fields={f: [_("Missing data for required field.")]
                                      for f in missing})
    values = _check_fields(data, catalog, None)
    parent = values.get("parent")
    defs = check_definitions(data.get("attributes") or [], _inherited_names(catalog, parent))
    _check_references(defs, catalog, values["key"])
    _unique(catalog, values, None)
    row = CIClass(key=values["key"], name=values["name"], parent=parent,
                  description=values.get("description", ""),
                  service_type=values.get("service_type"), attributes=defs, source=source)
    db.session.add(row)
    _commit()
    return row


def _unique(catalog: Catalog, values: dict, row: CIClass | None) -> None:
    if "key" in values and values["key"] in catalog.by_key \
            and catalog.by_key[values["key"]] is not row:
        raise Conflict(_("A class with the key %(key)s exists.", key=repr(values["key"])),
                       fields={"key": [_("Already exists.")]}, code="duplicate")
    if "name" in values:
        for other in catalog.by_key.values():
            if other is not row and other.name.lower() == values["name"].lower():
                raise Conflict(_("A class named %(name)s exists.", name=repr(values["name"])),
                               fields={"name": [_("Already exists.")]}, code="duplicate")


def update_class(actor: User | None, key: str, data: dict) -> CIClass:
    """Change the fields given (not the key); ``version`` must be the one read.

    Existing CIs are not rewritten: each is checked against the class as it then is on
    its next change."""
    access.check_model(actor)
    row, catalog = get_class(actor, key)
    if row.source == "plugin":
        raise Conflict(_("The class %(key)s is defined by a plugin; change the plugin.",
                         key=key), code="plugin_class")
    _check_version(row, data.get("version"))
    if "key" in data and data["key"] != row.key:
        raise ValidationError(_("A class keeps its key (imports and plugins use it)."),
                              fields={"key": [_("Cannot be changed.")]})
    values = _check_fields({k: v for k, v in data.items() if k != "key"}, catalog, row)
    parent = values["parent"] if "parent" in values else catalog.parent_of(row)
    own = row.attributes or []
    if "attributes" in data:
        own = check_definitions(data["attributes"] or [], _inherited_names(catalog, parent))
        _check_references(own, catalog, row.key)
    elif "parent" in values:
        check_definitions(own, _inherited_names(catalog, parent))
    _check_descendants(catalog, row, own, parent)
    _unique(catalog, values, row)
    for field in ("name", "description", "service_type"):
        if field in values and getattr(row, field) != values[field]:
            setattr(row, field, values[field])
    if "parent" in values and parent is not catalog.parent_of(row):
        row.parent = parent
    if "attributes" in data and own != row.attributes:
        row.attributes = own
    _commit()
    return row


def delete_class(actor: User | None, key: str) -> None:
    access.check_model(actor)
    row, catalog = get_class(actor, key)
    if row.source == "plugin":
        raise Conflict(_("The class %(key)s is defined by a plugin; uninstall the plugin.",
                         key=key), code="plugin_class")
    if catalog.descendants(row):
        raise Conflict(_("%(name)s has subclasses; delete or move them first.",
                         name=row.name), code="class_in_use")
    in_use = db.session.scalar(select(exists().where(ConfigurationItem.class_id == row.id)))
    if in_use:
        raise Conflict(_("%(name)s still has configuration items.", name=row.name),
                       code="class_in_use")
    referring = [c.name for c in catalog.by_key.values()
                 for a in c.attributes or [] if a.get("ci_class") == row.key and c is not row]
    if referring:
        raise Conflict(_("Attributes of %(classes)s refer to %(name)s.",
                         classes=", ".join(sorted(referring)), name=row.name),
                       code="class_in_use")
    db.session.delete(row)
    _commit()


def _check_version(row: CIClass, version) -> None:
    if version is None:
        raise ValidationError(_("The version you last read is required."),
                              fields={"version": [_("Missing data for required field.")]})
    if version != row.version:
        raise Conflict(
            _("The class %(key)s was changed by someone else (version %(current)s, you sent "
              "%(sent)s); reload it and apply your change again.",
              key=row.key, current=row.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=row.version)]},
            code="stale_version")


# --- plugin classes ------------------------------------------------------------------


def plugin_definitions() -> list[dict]:
    """Every class definition the plugins return (each plugin isolated)."""
    from servicedesk.plugins import call_hook

    definitions = []
    for result in call_hook("servicedesk_ci_classes"):
        if isinstance(result, list):
            definitions += [d for d in result if isinstance(d, dict)]
        else:
            log.warning("servicedesk_ci_classes returned %r, not a list; ignored",
                        type(result).__name__)
    return definitions


def sync_plugin_classes() -> tuple[int, int]:
    """Write the plugins' classes to the table; (created, updated). Does not commit:
    the caller's unit of work does (or ``sync_plugin_classes_now``)."""
    definitions = plugin_definitions()
    if not definitions:
        return 0, 0
    catalog = Catalog.load()
    created = updated = 0
    pending = {d.get("key"): d for d in definitions}
    # Parents before children; a bounded number of passes (one per nesting level).
    for _pass in range(MAX_DEPTH + 1):
        progressed = False
        for key, spec in list(pending.items()):
            parent_key = spec.get("parent")
            if parent_key and parent_key not in catalog.by_key and parent_key in pending:
                continue
            del pending[key]
            progressed = True
            try:
                outcome = _sync_one(catalog, spec)
            except ServiceError as exc:
                log.warning("plugin CI class %r ignored: %s %s", key, exc.message, exc.fields)
                continue
            created += outcome == "created"
            updated += outcome == "updated"
        if not pending or not progressed:
            break
    for key in pending:
        log.warning("plugin CI class %r ignored: its parent never resolved", key)
    if created or updated:
        db.session.flush()
    return created, updated


def _sync_one(catalog: Catalog, spec: dict) -> str | None:
    values = _check_fields({k: spec.get(k) for k in CLASS_FIELDS
                            if k in spec and k != "attributes"}, catalog, None)
    if "key" not in values or "name" not in values:
        raise ValidationError("a plugin class needs a key and a name",
                              fields={"key": ["missing"]})
    row = catalog.by_key.get(values["key"])
    if row is not None and row.source != "plugin":
        raise ValidationError("an admin or seed class has this key",
                              fields={"key": ["taken"]})
    parent = values.get("parent")
    defs = check_definitions(spec.get("attributes") or [], _inherited_names(catalog, parent))
    _check_references(defs, catalog, values["key"])
    wanted = {"name": values["name"], "description": values.get("description", ""),
              "service_type": values.get("service_type"), "attributes": defs}
    if row is None:
        _unique(catalog, {"name": values["name"]}, None)
        row = CIClass(key=values["key"], parent=parent, source="plugin", **wanted)
        db.session.add(row)
        catalog.add(row)
        return "created"
    changed = False
    for field, value in wanted.items():
        if getattr(row, field) != value:
            setattr(row, field, value)
            changed = True
    if catalog.parent_of(row) is not parent:
        row.parent = parent
        changed = True
    return "updated" if changed else None


def sync_plugin_classes_now(actor: User | None) -> tuple[int, int]:
    access.check_model(actor)
    result = sync_plugin_classes()
    _commit()
    return result


def class_counts() -> dict[int, int]:
    """{class id: number of CIs} for the class list."""
    rows = db.session.execute(select(ConfigurationItem.class_id, func.count())
                              .group_by(ConfigurationItem.class_id))
    return {class_id: count for class_id, count in rows}
