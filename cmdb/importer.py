"""Import CIs and relations from JSON or CSV: idempotent by external key, all or nothing.

JSON (the API's body and ``servicedesk cmdb import file.json``)::

    {"cis": [{"external_key": "srv-01", "name": "srv-01", "class": "server",
              "status": "in_use", "owner_group": "Infrastructure", "description": "",
              "attributes": {"ip_address": "10.0.0.1", "location": "dc-1"}}],
     "relations": [{"source": "app-1", "type": "runs_on", "target": "srv-01"}]}

CSV (``servicedesk cmdb import file.csv``, or ``{"csv": "<the text>"}`` to the API):
one CI per row; columns ``external_key`` (required), ``name``, ``class``, ``status``,
``owner_group``, ``description``, ``attr.<attribute>`` and ``rel.<type>`` (external
keys of the targets, separated by ``;``: ``rel.runs_on`` = ``srv-01;srv-02``). Cells
are text: ``42``, ``true``, ``2026-01-31`` are read by the attribute's type.

Rules: every CI row needs an ``external_key``; a row whose key exists updates that CI
(the fields given; an attribute given as null, or an empty cell, is removed), else it
creates one. Relations name their ends by external key (or CI id) and are added unless
they exist; an import never deletes. References (reference attributes, relation ends)
may point to CIs created by the same import. Running the same file twice changes
nothing the second time. Every row is checked; if any has an error nothing is written
and the error names each row and field (``cis[3].attributes.ip_address``, or ``line
5.attributes.ip_address`` for CSV). ``dry_run`` does all of it and then rolls back.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from cmdb import access
from cmdb.classes import sync_plugin_classes
from cmdb.models import RELATION_TYPES, CIHistory, ConfigurationItem, Relation
from cmdb.service import Checker, apply, check_relation, find_cis, history_row
from servicedesk.errors import Conflict, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.types import utcnow

CI = ConfigurationItem
CI_KEYS = {"external_key", "name", "class", "status", "owner_group", "description",
           "attributes"}
RELATION_KEYS = {"source", "type", "target"}
CSV_PLAIN = ("external_key", "name", "class", "status", "owner_group", "description")
MAX_API_ROWS = 20_000
CHUNK = 500


@dataclass
class Row:
    label: str
    data: dict
    from_text: bool = False
    errors: dict = field(default_factory=dict)


def _error(message: str, fields: dict) -> ValidationError:
    return ValidationError(message, fields=fields, code="import_invalid")


# --- parsing -------------------------------------------------------------------------


def parse(payload, max_rows: int | None = MAX_API_ROWS) -> tuple[list[Row], list[Row]]:
    """(CI rows, relation rows) of a JSON payload or ``{"csv": text}``."""
    if not isinstance(payload, dict):
        raise _error(_("The import must be a JSON object."), {"json": [_("Not an object.")]})
    if "csv" in payload:
        extra = sorted(set(payload) - {"csv"})
        if extra or not isinstance(payload["csv"], str):
            raise _error(_("A CSV import is {\"csv\": \"<text>\"} and nothing else."),
                         {k: [_("Unknown field.")] for k in extra}
                         or {"csv": [_("Not a valid string.")]})
        cis, relations = parse_csv(payload["csv"])
    else:
        extra = sorted(set(payload) - {"cis", "relations"})
        if extra:
            raise _error(_("The import has unknown fields."),
                         {k[:100]: [_("Unknown field.")] for k in extra})
        cis, relations = [], []
        for section, target in (("cis", cis), ("relations", relations)):
            rows = payload.get(section, [])
            if not isinstance(rows, list):
                raise _error(_("%(section)s must be a list.", section=section),
                             {section: [_("Not a valid list.")]})
            target += [Row(f"{section}[{i}]", r) for i, r in enumerate(rows)]
    if max_rows is not None and len(cis) + len(relations) > max_rows:
        raise _error(_("At most %(n)s rows per import; split the file.", n=max_rows),
                     {"cis": [_("Too many rows.")]})
    return cis, relations


def parse_csv(text: str) -> tuple[list[Row], list[Row]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader, None)
        if not header:
            raise _error(_("The CSV file is empty."), {"csv": [_("No header row.")]})
        header = [h.strip() for h in header]
        bad = [h for h in header if not _known_column(h)]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if bad or dupes or "external_key" not in header:
            reasons = [_("Unknown column %(name)s.", name=repr(h[:60])) for h in bad]
            reasons += [_("Column %(name)s appears twice.", name=repr(h)) for h in dupes]
            if "external_key" not in header:
                reasons.append(_("The column external_key is required."))
            raise _error(_("The CSV header is not valid."), {"csv": reasons})
        cis, relations = [], []
        for cells in reader:
            label = f"line {reader.line_num}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                row = Row(label, {}, True)
                row.errors["csv"] = [_("%(n)s cells; the header has %(m)s.",
                                       n=len(cells), m=len(header))]
                cis.append(row)
                continue
            data, attributes = {}, {}
            for name, cell in zip(header, cells):
                if name.startswith("attr."):
                    attributes[name[5:]] = cell
                elif name.startswith("rel."):
                    for target in (t.strip() for t in cell.split(";")):
                        if target:
                            relations.append(Row(f"{label}.{name}", {
                                "source": cells[header.index("external_key")].strip(),
                                "type": name[4:], "target": target}, True))
                elif cell.strip():
                    data[name] = cell.strip()
            if attributes:
                data["attributes"] = attributes
            cis.append(Row(label, data, True))
        return cis, relations
    except csv.Error as exc:
        raise _error(_("The CSV file cannot be read: %(reason)s (line %(line)s).",
                       reason=str(exc), line=reader.line_num),
                     {"csv": [str(exc)]}) from None


def _known_column(name: str) -> bool:
    if name in CSV_PLAIN:
        return True
    if name.startswith("attr.") and len(name) > 5:
        return True
    return name.startswith("rel.") and name[4:] in RELATION_TYPES


# --- running -------------------------------------------------------------------------


def run_import(actor: User | None, payload, dry_run: bool = False,
               max_rows: int | None = MAX_API_ROWS) -> dict:
    """Import ``payload``; the report (counts). Any row error: a 422 naming every bad row
    and field, and nothing written."""
    access.check_edit(actor)
    ci_rows, relation_rows = parse(payload, max_rows)
    try:
        report = _run(actor, ci_rows, relation_rows)
    except IntegrityError:
        db.session.rollback()
        raise _conflict() from None
    except BaseException:
        db.session.rollback()
        raise
    errors = {f"{row.label}.{name}" if name else row.label: reasons
              for row in ci_rows + relation_rows for name, reasons in row.errors.items()}
    if errors:
        db.session.rollback()
        bad = len({row.label for row in ci_rows + relation_rows if row.errors})
        raise _error(ngettext("%(num)s row has errors; nothing was imported.",
                              "%(num)s rows have errors; nothing was imported.", bad), errors)
    report["dry_run"] = dry_run
    if dry_run:
        db.session.rollback()
        return report
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise _conflict() from None
    return report


def _conflict() -> Conflict:
    return Conflict(_("Someone changed the CMDB at the same moment (an external key or "
                      "relation now exists); run the import again."), code="integrity")


def _run(actor: User | None, ci_rows: list[Row], relation_rows: list[Row]) -> dict:
    sync_plugin_classes()
    checker = Checker()
    now = utcnow()
    _check_shapes(ci_rows, relation_rows)
    existing = _existing([row.data["external_key"] for row in ci_rows if not row.errors])
    # 1. Check every row against its class (references still unresolved).
    checked: list[tuple[Row, CI | None, tuple]] = []
    for row in ci_rows:
        if row.errors:
            continue
        current = existing.get(row.data["external_key"])
        values, refs, errors = checker.check(row.data, current, row.from_text)
        row.errors.update(errors)
        checked.append((row, current, (values, refs, row.errors)))
    # 2. Create the new CIs (so references may point to them), without references yet:
    # plain multi-row INSERTs with RETURNING, no ORM object per row.
    created = [(row, values) for row, current, (values, _refs, errors) in checked
               if current is None and not errors]
    new_ids, inserted = _insert_cis(created, now)
    # 3. Resolve references (one query per 500), then update the existing CIs.
    checker.resolve([c[2] for c in checked if not c[0].errors])
    history, counts = [], {"created": 0, "updated": 0, "unchanged": 0}
    references = []  # (new CI id, its attributes with the references resolved)
    for row, current, (values, _refs, errors) in checked:
        if errors:
            continue
        if current is None:
            ci_id = new_ids[id(row)]
            if values["attributes"] != inserted[id(row)]:
                references.append((ci_id, dict(values["attributes"])))
            history.append(history_row(ci_id, actor, "created", None, None, values["name"],
                                       now))
            counts["created"] += 1
        else:
            rows = apply(current, actor, values, now)
            history += rows
            counts["updated" if rows else "unchanged"] += 1
    _complete(references)
    in_file = {row.data["external_key"] for row in ci_rows
               if isinstance(row.data, dict) and isinstance(row.data.get("external_key"), str)}
    relations = _relations(actor, relation_rows, now, history, in_file)
    if history:
        db.session.flush()
        for start in range(0, len(history), CHUNK):
            db.session.execute(insert(CIHistory), history[start:start + CHUNK])
    return {"cis": counts, "relations": relations}


def _insert_cis(created: list, now) -> tuple[dict, dict]:
    """INSERT the new CIs; ({id(row): CI id}, {id(row): the attributes inserted})."""
    new_ids, inserted = {}, {}
    statement = insert(CI).returning(CI.id, sort_by_parameter_order=True)
    for start in range(0, len(created), CHUNK):
        chunk = created[start:start + CHUNK]
        params = []
        for row, values in chunk:
            inserted[id(row)] = dict(values["attributes"])
            owner = values.get("owner_group")
            params.append({
                "name": values["name"], "class_id": values["ci_class"].id,
                "status": values.get("status", "in_use"),
                "owner_group_id": owner.id if owner is not None else None,
                "description": values.get("description", ""),
                "attributes": inserted[id(row)], "external_key": row.data["external_key"],
                "created_at": now, "updated_at": now, "version": 1})
        ids = db.session.execute(statement, params).scalars().all()
        for (row, _values), ci_id in zip(chunk, ids):
            new_ids[id(row)] = ci_id
    return new_ids, inserted


def _complete(references: list) -> None:
    """Add the resolved references to CIs this import created: part of their creation,
    so written as such (a plain UPDATE: their version stays 1)."""
    table = CI.__table__
    statement = update(table).where(table.c.id == bindparam("ci")).values(
        attributes=bindparam("attrs", type_=table.c.attributes.type))
    for start in range(0, len(references), CHUNK):
        db.session.execute(statement, [{"ci": ci_id, "attrs": attrs}
                                       for ci_id, attrs in references[start:start + CHUNK]])


def _check_shapes(ci_rows: list[Row], relation_rows: list[Row]) -> None:
    seen: dict[str, str] = {}
    for row in ci_rows:
        if row.errors:
            continue
        if not isinstance(row.data, dict):
            row.errors[""] = [_("Not an object.")]
            continue
        for key in sorted(set(row.data) - CI_KEYS):
            row.errors[key[:100]] = [_("Unknown field.")]
        key = row.data.get("external_key")
        if isinstance(key, str):
            key = key.strip()
            row.data["external_key"] = key
        if not isinstance(key, str) or not 0 < len(key) <= 200:
            row.errors["external_key"] = [_("Required: text of 1 to 200 characters.")]
        elif key in seen:
            row.errors["external_key"] = [_("Also used by %(row)s.", row=seen[key])]
        else:
            seen[key] = row.label
    for row in relation_rows:
        if not isinstance(row.data, dict):
            row.errors[""] = [_("Not an object.")]
            continue
        for key in sorted(set(row.data) - RELATION_KEYS):
            row.errors[key[:100]] = [_("Unknown field.")]
        for end in ("source", "target"):
            ref = row.data.get(end)
            ok = (isinstance(ref, str) and 0 < len(ref) <= 200) or (
                isinstance(ref, int) and not isinstance(ref, bool) and 1 <= ref <= 2**31 - 1)
            if not ok:
                row.errors[end] = [_("An external key or CI id.")]


def _existing(keys: list[str]) -> dict[str, CI]:
    found = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        for ci in db.session.scalars(select(CI).where(CI.external_key.in_(chunk))):
            found[ci.external_key] = ci
    return found


def _relations(actor, rows: list[Row], now, history: list, in_file: set) -> dict:
    """Add the relations that do not exist. An end that is a CI row of this import
    which failed is no error of the relation's (the CI row's error says it all)."""
    counts = {"created": 0, "unchanged": 0}
    good = [row for row in rows if not row.errors]
    ends = find_cis([row.data[end] for row in good for end in ("source", "target")],
                    light=True)
    wanted = []
    for row in good:
        source, target = ends.get(row.data["source"]), ends.get(row.data["target"])
        failed_end = False
        for end, ci in (("source", source), ("target", target)):
            if ci is None and row.data[end] in in_file:
                failed_end = True
            elif ci is None:
                row.errors[end] = [_("Unknown CI %(ref)s.", ref=repr(row.data[end]))]
        row.errors.update(check_relation(source, target, row.data.get("type")))
        if not row.errors and not failed_end:
            wanted.append((row, source, target, row.data["type"]))
    present = _present({(s.id, t.id, kind) for _row, s, t, kind in wanted})
    new = []
    for row, source, target, kind in wanted:
        triple = (source.id, target.id, kind)
        if triple in present:
            counts["unchanged"] += 1
            continue
        present.add(triple)
        dependent, dependency = Relation.dependency_pair(source.id, target.id, kind)
        new.append({"source_id": source.id, "target_id": target.id, "type": kind,
                    "dependent_id": dependent, "dependency_id": dependency,
                    "created_at": now,
                    "created_by_id": actor.id if actor is not None else None})
        kind_def = RELATION_TYPES[kind]
        history.append(history_row(source.id, actor, "relation_added", kind_def.key, None,
                                   f"{target.name} (#{target.id})", now))
        history.append(history_row(target.id, actor, "relation_added", f"~{kind_def.key}",
                                   None, f"{source.name} (#{source.id})", now))
        counts["created"] += 1
    for start in range(0, len(new), CHUNK):
        db.session.execute(insert(Relation), new[start:start + CHUNK])
    return counts


def _present(triples: set) -> set:
    """The (source, target, type) triples that exist already (one query per 500)."""
    ordered = sorted(triples)
    found = set()
    for start in range(0, len(ordered), CHUNK):
        chunk = set(ordered[start:start + CHUNK])
        sources = sorted({s for s, _t, _k in chunk})
        rows = db.session.execute(select(Relation.source_id, Relation.target_id, Relation.type)
                                  .where(Relation.source_id.in_(sources)))
        found |= {tuple(r) for r in rows} & chunk
    return found


# --- files (the CLI) -----------------------------------------------------------------


def import_file(path: str, dry_run: bool = False, fmt: str | None = None,
                actor: User | None = None) -> dict:
    """Import a .json or .csv file (no row limit: the CLI is for big imports)."""
    import json

    fmt = fmt or ("csv" if path.lower().endswith(".csv") else "json")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(_("Cannot read %(path)s: %(reason)s", path=path, reason=str(exc)),
                     {"file": [str(exc)]}) from None
    if fmt == "csv":
        payload = {"csv": text}
    else:
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _error(_("%(path)s is not valid JSON: %(reason)s", path=path,
                           reason=str(exc)), {"file": [str(exc)]}) from None
    return run_import(actor, payload, dry_run=dry_run, max_rows=None)


def report_lines(report: dict) -> list[str]:
    cis, relations = report["cis"], report["relations"]
    prefix = "cmdb import (dry run, nothing written)" if report["dry_run"] else "cmdb import"
    return [f"{prefix}: CIs {cis['created']} created, {cis['updated']} updated, "
            f"{cis['unchanged']} unchanged; relations {relations['created']} created, "
            f"{relations['unchanged']} unchanged"]
