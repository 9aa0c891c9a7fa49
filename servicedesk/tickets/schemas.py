"""marshmallow schemas shared by every ticket kind: comments, history, paging."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate


# Database integer columns are 32-bit on PostgreSQL: larger ids can match nothing, and
# must be refused as input rather than reach the database and fail there.
MAX_ID = 2**31 - 1


def Id(**kwargs) -> fields.Integer:
    """A reference to a row by id: a strict positive 32-bit integer."""
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def Version(**kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


class Stripped(fields.String):
    """A string with surrounding white space removed on load."""

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        return result.strip()


def _name(user):
    return None if user is None else user.username


def _display(user):
    return None if user is None else user.name


class CommentSchema(ma.Schema):
    id = fields.Integer()
    author = fields.Function(lambda c: _name(c.author))
    author_name = fields.Function(
        lambda c: _display(c.author),
        metadata={"description": "The author's display name: every reply is signed."},
    )
    body = fields.String()
    public = fields.Boolean()
    created_at = fields.DateTime()


class CommentCreateSchema(ma.Schema):
    body = Stripped(required=True, validate=validate.Length(min=1, max=50_000))
    public = fields.Boolean(load_default=True)


class AuditEntrySchema(ma.Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.Function(lambda e: _name(e.actor))
    actor_name = fields.Function(lambda e: _display(e.actor) if e.actor else "System")
    action = fields.String()
    field = fields.String(allow_none=True)
    old_value = fields.String(allow_none=True)
    new_value = fields.String(allow_none=True)


class CategorySchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    name = Stripped(required=True, validate=validate.Length(min=1, max=120))
    parent_id = Id(allow_none=True, load_default=None)
    default_group = fields.Function(
        lambda c: c.default_group.name if c.default_group else None,
        deserialize=lambda v: _group_name(v), allow_none=True,
    )
    active = fields.Boolean(dump_only=True)


def _group_name(value) -> str:
    # Loaded by a Function field, which checks no type: anything but a name would reach
    # the group lookup (on PostgreSQL, ``name = 5`` is an error there, not a 422).
    if not isinstance(value, str) or len(value) > 150:
        raise ma.ValidationError("Not a valid group name.")
    return value


class PriorityCellSchema(ma.Schema):
    impact = fields.String(required=True, validate=validate.OneOf(("high", "medium", "low")))
    urgency = fields.String(required=True, validate=validate.OneOf(("high", "medium", "low")))
    priority = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))


class PriorityMatrixSchema(ma.Schema):
    cells = fields.List(fields.Nested(PriorityCellSchema), required=True)
