"""marshmallow schemas of the SLA API: calendars, policies, breaches next.

The schemas check shapes and ranges (each error names its field); what needs the
calendar arithmetic or the database (time zones, intervals, holidays, statuses of the
workflows, references, unique names) is checked by ``servicedesk.sla.admin``.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicedesk.sla.models import DEFAULT_PAUSE_STATUSES, DEFAULT_WARNING_PERCENT
from servicedesk.tickets.schemas import Id, Stripped, Version

# About 2 years around the clock, or 8 years of 8-hour business days.
MAX_MINUTES = 1_000_000

SLA_FIELD_DOC = {"description": (
    "The ticket's SLA: {policy: name | null, response: clock | null, resolution: clock "
    "| null}; a clock is {due_at, warning_at, elapsed_percent, paused, breached, "
    "met_at}. due_at is null while paused (unless already passed).")}


class _Holiday(fields.Field):
    """A date "YYYY-MM-DD" or an inclusive range ["YYYY-MM-DD", "YYYY-MM-DD"]."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) <= 10:
            return value
        if (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, str) and len(v) <= 10 for v in value)):
            return value
        raise ma.ValidationError('Not a date "YYYY-MM-DD" or a ["YYYY-MM-DD", "YYYY-MM-DD"] range.')


_interval = fields.List(fields.String(allow_none=True, validate=validate.Length(max=15)),
                        validate=validate.Length(equal=2, error="An interval is [start, end]."))


class CalendarSchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    name = Stripped(required=True, validate=validate.Length(min=1, max=120))
    timezone = fields.String(required=True, validate=validate.Length(min=1, max=64),
                             metadata={"description": "An IANA zone, e.g. Europe/Berlin."})
    week = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=2)),
        values=fields.List(_interval, validate=validate.Length(max=48)),
        required=True,
        metadata={"description": 'Working intervals per weekday (0 = Monday .. 6 = Sunday), '
                                 'wall clock: {"0": [["09:00", "17:00"]], ...}; "24:00" '
                                 'ends a day.'},
    )
    holidays = fields.List(_Holiday(), load_default=list, validate=validate.Length(max=2000),
                           metadata={"description": 'Dates and inclusive ranges: ["2026-12-25", '
                                                    '["2026-12-24", "2026-12-31"]].'})
    version = Version(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class CalendarUpdateSchema(CalendarSchema):
    name = Stripped(validate=validate.Length(min=1, max=120))
    timezone = fields.String(validate=validate.Length(min=1, max=64))
    week = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=2)),
                       values=fields.List(_interval, validate=validate.Length(max=48)))
    holidays = fields.List(_Holiday(), validate=validate.Length(max=2000))
    version = Version(required=True, load_only=True,
                      metadata={"description": "The version you last read."})


def _minutes(**kwargs):
    return fields.Integer(strict=True, allow_none=True,
                          validate=validate.Range(min=1, max=MAX_MINUTES), **kwargs)


class PolicySchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    name = Stripped(required=True, validate=validate.Length(min=1, max=120))
    position = fields.Integer(strict=True, validate=validate.Range(min=0, max=1_000_000),
                              metadata={"description": "Match order: the first active "
                                                       "policy whose rules match wins."})
    active = fields.Boolean(load_default=True)
    kinds = fields.List(fields.String(validate=validate.Length(min=1, max=20)),
                        load_default=list, validate=validate.Length(max=20),
                        metadata={"description": "Ticket kinds; empty: any."})
    priorities = fields.List(fields.Integer(strict=True, validate=validate.Range(1, 5)),
                             load_default=list, validate=validate.Length(max=5),
                             metadata={"description": "Priorities 1-5; empty: any."})
    service_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=1000),
                              metadata={"description": "Services; empty: any."})
    category_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=1000),
                               metadata={"description": "Categories or subcategories; "
                                                        "empty: any."})
    response_minutes = _minutes(load_default=None, metadata={
        "description": "First-response target in business minutes; null: none."})
    resolution_minutes = _minutes(load_default=None, metadata={
        "description": "Resolution target in business minutes; null: none."})
    calendar_id = Id(required=True)
    calendar = fields.Function(lambda p: p.calendar.name if p.calendar else None,
                               dump_only=True)
    pause_statuses = fields.List(
        fields.String(validate=validate.Length(min=1, max=80)),
        load_default=lambda: list(DEFAULT_PAUSE_STATUSES), validate=validate.Length(max=50),
        metadata={"description": 'Statuses that stop the clocks: "status" or '
                                 '"status:pending_reason".'})
    warning_percent = fields.Integer(strict=True, validate=validate.Range(1, 99),
                                     load_default=DEFAULT_WARNING_PERCENT)
    steps = fields.List(fields.Dict(), dump_only=True,
                        metadata={"description": "Escalation steps (coming): always []."})
    version = Version(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class PolicyUpdateSchema(PolicySchema):
    name = Stripped(validate=validate.Length(min=1, max=120))
    active = fields.Boolean()
    kinds = fields.List(fields.String(validate=validate.Length(min=1, max=20)),
                        validate=validate.Length(max=20))
    priorities = fields.List(fields.Integer(strict=True, validate=validate.Range(1, 5)),
                             validate=validate.Length(max=5))
    service_ids = fields.List(Id(), validate=validate.Length(max=1000))
    category_ids = fields.List(Id(), validate=validate.Length(max=1000))
    response_minutes = _minutes()
    resolution_minutes = _minutes()
    calendar_id = Id()
    pause_statuses = fields.List(fields.String(validate=validate.Length(min=1, max=80)),
                                 validate=validate.Length(max=50))
    warning_percent = fields.Integer(strict=True, validate=validate.Range(1, 99))
    version = Version(required=True, load_only=True,
                      metadata={"description": "The version you last read."})


class BreachQuerySchema(ma.Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 200))


class BreachSchema(ma.Schema):
    number = fields.String()
    kind = fields.String()
    title = fields.String()
    status = fields.String()
    priority = fields.Integer()
    group = fields.Function(lambda t: t.group.name if t.group else None)
    assignee = fields.Function(lambda t: t.assignee.username if t.assignee else None)
    sla_due_at = fields.DateTime()
    escalation_level = fields.Integer()
