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


# How FastDumpSchema dumps a field (see _plan_fast_dump).
_MARSHMALLOW, _FUNCTION, _NO_ATTRIBUTE, _GENERIC, _STRING, _INTEGER, _BOOLEAN, _DATETIME = range(8)


class FastDumpSchema(ma.Schema):
    """A schema whose dump gives marshmallow's result with less work per field.

    Lists dump 50 tickets of ~36 fields each, and marshmallow's generic path per field
    (Field.serialize -> get_value -> Schema.get_attribute -> utils.get_value, which
    first tries ``obj[key]`` -> the field's _serialize) cost as much as the query: a
    third of a queue page. For objects without ``__getitem__`` (ORM rows) that path
    is ``getattr(obj, attribute, missing)``, the dump default if missing, then the
    field's formatting; so this does exactly that, and formats the commonest cases
    inline: None stays None, a str for a String, an int for an Integer, True/False
    for a Boolean, a datetime through the DateTime field's own format function, a
    Function field's function called with the object. Everything else calls the
    field's own ``_serialize``; fields overriding ``serialize`` or ``get_value``,
    dotted attributes, mapping-like objects and schemas overriding ``get_attribute``
    take marshmallow's path unchanged, and ``dump`` (pre/post-dump hooks) is not
    touched. tests/test_query_counts.py checks the output equals marshmallow's.
    """

    def _serialize(self, obj, *, many=False):
        if many and obj is not None:
            return [self._serialize(item) for item in obj]
        if (hasattr(type(obj), "__getitem__")
                or type(self).get_attribute is not ma.Schema.get_attribute):
            return super()._serialize(obj, many=False)
        plan = self.__dict__.get("_fast_dump_plan")
        if plan is None:
            plan = self._fast_dump_plan = self._plan_fast_dump()
        missing = ma.missing
        result = self.dict_class()
        for key, name, attribute, field, kind, extra in plan:
            if kind == _FUNCTION:
                result[key] = extra(obj)
                continue
            if kind == _MARSHMALLOW:
                value = field.serialize(name, obj, accessor=self.get_attribute)
            elif kind == _NO_ATTRIBUTE:
                value = field._serialize(None, name, obj)
            else:
                value = getattr(obj, attribute, missing)
                if value is missing:
                    default = field.dump_default
                    value = default() if callable(default) else default
                    if value is missing:
                        continue
                if kind == _GENERIC:
                    value = field._serialize(value, name, obj)
                elif value is None:
                    pass  # String, Integer, Boolean and DateTime all dump None as None
                elif kind == _STRING:
                    if type(value) is not str:
                        value = field._serialize(value, name, obj)
                elif kind == _INTEGER:
                    if type(value) is not int:
                        value = field._serialize(value, name, obj)
                elif kind == _BOOLEAN:
                    if value is not True and value is not False:
                        value = field._serialize(value, name, obj)
                else:  # _DATETIME
                    value = extra(value)
            if value is not missing:
                result[key] = value
        return result

    def _plan_fast_dump(self):
        plan = []
        for name, field in self.dump_fields.items():
            key = field.data_key if field.data_key is not None else name
            attribute = field.attribute if field.attribute is not None else name
            kind, extra, cls = _GENERIC, None, type(field)
            if cls.serialize is not fields.Field.serialize or "." in attribute:
                kind = _MARSHMALLOW
            elif not field._CHECK_ATTRIBUTE:
                kind = _NO_ATTRIBUTE
                if cls is fields.Function and field.serialize_func is not None:
                    kind, extra = _FUNCTION, field.serialize_func
            elif cls.get_value is not fields.Field.get_value:
                kind = _MARSHMALLOW
            elif cls is fields.String:
                kind = _STRING
            elif cls is fields.Integer and not field.as_string:
                kind = _INTEGER
            elif cls is fields.Boolean and True in field.truthy and False in field.falsy:
                kind = _BOOLEAN
            elif cls is fields.DateTime:
                extra = cls.SERIALIZATION_FUNCS.get(field.format or cls.DEFAULT_FORMAT)
                kind = _DATETIME if extra is not None else _GENERIC
            plan.append((key, name, attribute, field, kind, extra))
        return plan


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
