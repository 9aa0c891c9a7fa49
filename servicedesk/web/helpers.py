"""Plumbing shared by the pages of every ticket kind (incidents, problems, requests...).

- ``me()``: the signed-in user itself (services take the instance, not the proxy);
- ``staff_only``: a console page, which does not exist for anyone but IT staff (404);
- ``form_refusal(exc, form)``: what went wrong with a submitted form, for the page,
  after undoing the unit of work; ``form_action``: run a form's service call, then
  redirect, or show the page again with those reasons;
- ``filter_refusal(exc)``: what is wrong with a list page's filters (a 400);
- ``typed_values(refusal)``: what the user typed, to show again on that page;
- ``payload``/``load``: an HTML form as the JSON a client would send, validated with
  the API's own schema; ``flatten``: marshmallow's messages as {field: [reasons]};
- ``N_``/``label``: labels marked for extraction, translated when shown;
- ``groups``/``staff_by_group``: the choices of the group and assignee selects.

The pages validate with the same marshmallow schemas as the API. A browser sends every
value as a string and an empty field as ``""``; ``payload`` turns a submitted form into
what a JSON client would have sent (digits into integers for integer fields, empty
optional fields left out), so the schema and the service see the same input either way.

No ticket kind is imported here (tests/test_layout.py): the pages of every kind, of the
knowledge base, the catalogue and LDAP build on it.
"""

from __future__ import annotations

import re
from functools import wraps

from flask import abort, flash, redirect, request
from flask_babel import gettext
from flask_login import current_user
from marshmallow import ValidationError as SchemaError
from marshmallow import fields as ma_fields
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from servicedesk.errors import ServiceError
from servicedesk.extensions import db, login_manager
from servicedesk.i18n import N_  # noqa: F401 (re-exported for the pages)
from servicedesk.identity.models import Group

_INTEGER = re.compile(r"^-?\d{1,18}$")


def me():
    """The signed-in user itself (services need the instance, not Flask-Login's proxy)."""
    return current_user._get_current_object()


def staff_only(view):
    """Console pages: for requesters they do not exist (404, like a ticket they may not see)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_staff:
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def form_refusal(exc: Exception, form: str) -> dict:
    """What went wrong with a submitted form, for the page; the unit of work is undone.

    ``exc`` is the schema's ValidationError (422, reasons by field) or a ServiceError
    (its status, message and fields); a 404 is raised again (no form left to show)."""
    db.session.rollback()
    if isinstance(exc, SchemaError):
        return {"form": form, "status": 422, "fields": flatten(exc.messages),
                "message": gettext("Some fields are missing or invalid.")}
    if exc.status == 404:
        raise exc  # nothing left to show the form on: the app's 404 page
    return {"form": form, "status": exc.status, "message": exc.message,
            "fields": dict(exc.fields or {})}


def form_action(form: str, action, done: str, page, success):
    """Run one service call for a submitted form (Post/Redirect/Get).

    On success: flash what ``action`` returned, else ``done``, and redirect to
    ``success`` (a URL, or a callable giving one once the action has run). On a refusal
    (schema or service): ``page(refusal)``, the page again with the reasons."""
    try:
        message = action()
    except (SchemaError, ServiceError) as exc:
        return page(form_refusal(exc, form))
    flash(message or done, "success")
    return redirect(success() if callable(success) else success)


def filter_refusal(exc: Exception, form: str = "filters") -> dict:
    """What is wrong with a list page's filters (its query string), for the page: a 400.

    ``exc`` is the schema's ValidationError (reasons by field) or a ServiceError (e.g. an
    unknown group or user named in a filter; the unit of work is undone)."""
    if isinstance(exc, SchemaError):
        return {"form": form, "status": 400, "fields": flatten(exc.messages),
                "message": gettext("The filter has unknown or invalid values.")}
    db.session.rollback()
    return {"form": form, "status": 400, "message": exc.message,
            "fields": dict(exc.fields or {})}


def typed_values(refusal: dict | None) -> dict:
    """What the user typed, to show again, unless the record changed under them (409)."""
    if refusal is None or refusal["status"] == 409:
        return {}
    return request.form.to_dict()


# --- form -> schema payload ----------------------------------------------------------


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
