"""marshmallow schemas of users and groups."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicedesk.identity.models import ROLES
from servicedesk.tickets.schemas import Stripped


class GroupSchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    name = Stripped(required=True, validate=validate.Length(min=1, max=150))
    support_line = fields.Integer(required=True, strict=True, validate=validate.OneOf((1, 2, 3)))
    description = fields.String(load_default="", validate=validate.Length(max=500))


class UserSchema(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String()
    display_name = fields.String()
    role = fields.String()
    locale = fields.String()
    timezone = fields.String()
    active = fields.Boolean()
    groups = fields.Function(lambda u: [g.name for g in u.groups])
    working_hours = fields.Method(
        "_working_hours", metadata={"description": "The SLA calendar of the person's "
                                    "working hours (null: the policy's calendar)."})

    def _working_hours(self, user):
        from servicedesk.identity.service import working_hours_name

        return working_hours_name(user)


class UserCreateSchema(ma.Schema):
    username = Stripped(required=True, validate=validate.Length(min=1, max=150))
    email = fields.Email(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    display_name = Stripped(load_default="", validate=validate.Length(max=200))
    groups = fields.List(fields.String(), load_default=list)
    password = fields.String(load_default=None, validate=validate.Length(min=8, max=200),
                             load_only=True)
    locale = fields.String(load_default="en")
    timezone = fields.String(load_default="UTC", validate=validate.Length(max=64))


class UserUpdateSchema(ma.Schema):
    active = fields.Boolean()
    working_hours = fields.String(
        allow_none=True, validate=validate.Length(min=1, max=120),
        metadata={"description": "Name of an SLA calendar, or null for the policy's."})
