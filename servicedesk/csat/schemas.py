"""Survey payloads."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from servicedesk.csat.service import MAX_COMMENT


class SurveySchema(Schema):
    id = fields.Int(dump_only=True)
    ticket = fields.Function(lambda s: s.ticket.number, dump_only=True)
    resolved_at = fields.DateTime(dump_only=True)
    rating = fields.Int(dump_only=True, allow_none=True)
    comment = fields.Str(dump_only=True, allow_none=True)
    answered_at = fields.DateTime(dump_only=True, allow_none=True)
    reopened = fields.Bool(dump_only=True)


class SurveyAnswerSchema(Schema):
    rating = fields.Int(required=True, strict=True, validate=validate.Range(1, 5))
    comment = fields.Str(allow_none=True, validate=validate.Length(max=MAX_COMMENT))
