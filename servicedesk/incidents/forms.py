"""Helpers of the incident pages: HTML form -> schema payload, labels, dropdown choices.

The pages validate with the same marshmallow schemas as the API. A browser sends every
value as a string and an empty field as ``""``; ``payload`` turns a submitted form into
what a JSON client would have sent (digits into integers for integer fields, empty
optional fields left out), so the schema and the service see the same input either way.
"""

from __future__ import annotations

import re

from flask_babel import gettext
from marshmallow import fields as ma_fields
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from servicedesk.extensions import db
from servicedesk.identity.models import Group

_INTEGER = re.compile(r"^-?\d{1,18}$")


def payload(schema, form, keys, nullable=frozenset()) -> dict:
    """The JSON-like dict a form submission stands for (only ``keys`` are taken).

    An empty value is left out ("not given"), except for the ``nullable`` keys, where
    it means "none" and is sent as null (e.g. "nobody" in the assignee select).
    """
    data = {}
    for key in keys:
        if key not in form:
            continue
        value = form.get(key, "")
        if value.strip() == "":
            if key in nullable:
                data[key] = None
            continue
        field = schema.fields.get(key)
        if isinstance(field, ma_fields.Integer) and _INTEGER.match(value.strip()):
            value = int(value.strip())
        data[key] = value
    return data


def load(schema, form, keys, nullable=frozenset()) -> dict:
    """Validate a submitted form with ``schema``; raises marshmallow's ValidationError."""
    return schema.load(payload(schema, form, keys, nullable))


def flatten(messages) -> dict[str, list[str]]:
    """marshmallow's error messages ({field: [..] | {index: [..]}}) as {field: [reasons]}."""
    result: dict[str, list[str]] = {}

    def reasons(value):
        if isinstance(value, dict):
            return [r for v in value.values() for r in reasons(v)]
        if isinstance(value, (list, tuple)):
            return [r for v in value for r in reasons(v)]
        return [str(value)]

    if not isinstance(messages, dict):
        return {"_schema": reasons(messages)}
    for name, value in messages.items():
        result[str(name)] = reasons(value)
    return result


# --- labels (every word a person reads goes through gettext) -------------------------


def N_(message: str) -> str:
    """Mark ``message`` for extraction (pybabel's default keywords include N_); translated
    when shown, by ``label``, in the reader's locale."""
    return message


STATUS_LABELS = {
    "new": N_("New"),
    "assigned": N_("Assigned"),
    "in_progress": N_("In progress"),
    "pending": N_("Pending"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
    "cancelled": N_("Cancelled"),
}
LEVEL_LABELS = {"high": N_("High"), "medium": N_("Medium"), "low": N_("Low")}
PENDING_LABELS = {
    "awaiting_requester": N_("Awaiting the requester"),
    "awaiting_vendor": N_("Awaiting a vendor"),
    "awaiting_change": N_("Awaiting a change"),
}
RESOLUTION_LABELS = {
    "fixed": N_("Fixed"),
    "workaround": N_("Workaround"),
    "no_fault_found": N_("No fault found"),
    "user_instructed": N_("User instructed"),
    "duplicate": N_("Duplicate"),
    "cannot_reproduce": N_("Cannot reproduce"),
    "out_of_scope": N_("Out of scope"),
}
ACTION_LABELS = {
    "created": N_("Created"),
    "updated": N_("Updated"),
    "assigned": N_("Assigned"),
    "transition": N_("Status change"),
    "commented": N_("Public reply"),
    "internal_note": N_("Internal note"),
    "escalated": N_("Escalated"),
    "requester_replied": N_("Requester replied"),
    "sla_policy": N_("SLA policy"),
    "sla_targets": N_("SLA targets"),
}
FIELD_LABELS = {
    "title": N_("Title"),
    "description": N_("Description"),
    "impact": N_("Impact"),
    "urgency": N_("Urgency"),
    "priority": N_("Priority"),
    "category_id": N_("Category"),
    "subcategory_id": N_("Subcategory"),
    "category": N_("Category"),
    "subcategory": N_("Subcategory"),
    "status": N_("Status"),
    "to": N_("New status"),
    "group": N_("Group"),
    "support_line": N_("Support line"),
    "assignee": N_("Assignee"),
    "pending_reason": N_("Pending reason"),
    "resolution_code": N_("Resolution code"),
    "resolution_notes": N_("Resolution notes"),
    "resolved_at": N_("Resolved at"),
    "closed_at": N_("Closed at"),
    "reopen_count": N_("Times reopened"),
    "number": N_("Number"),
    "body": N_("Text"),
    "public": N_("Visibility"),
    "note": N_("Note"),
    "version": N_("Version"),
    "affected_cis": N_("Affected CIs"),
    "cursor": N_("Page"),
    "sort": N_("Sort"),
    "sla_policy": N_("SLA policy"),
    "sla_targets": N_("SLA targets"),
    "_schema": N_("Form"),
}


def label(table: dict, key):
    """The translated label of ``key`` in ``table``; the key itself if there is none."""
    if key is None:
        return ""
    return gettext(table[key]) if key in table else key


# --- dropdown choices ----------------------------------------------------------------


def groups() -> list[Group]:
    """Every group, by support line then name (reference data: not ticket-scoped)."""
    return list(db.session.scalars(select(Group).order_by(Group.support_line, Group.name)))


def staff_by_group() -> list[tuple[Group, list]]:
    """Active staff members of each group, for the assignee select (grouped by group)."""
    rows = db.session.scalars(
        select(Group).options(selectinload(Group.members))
        .order_by(Group.support_line, Group.name)
    )
    return [(g, [u for u in g.members if u.active and u.is_staff]) for g in rows]


def humanize_seconds(seconds) -> str:
    """How long, for people: "under a minute", "42 min", "3 h 12 min", "2 d 4 h"."""
    seconds = max(0, int(seconds or 0))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return gettext("under a minute")
    if seconds < 3600:
        return gettext("%(m)d min", m=minutes)
    if seconds < 86400:
        return gettext("%(h)d h %(m)d min", h=hours, m=minutes % 60)
    return gettext("%(d)d d %(h)d h", d=days, h=hours % 24)
