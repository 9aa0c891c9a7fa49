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
    "The ticket's SLA: {policy: name | null, targets: {response_minutes, "
    "resolution_minutes, adjusted_by} | null, response: clock | null, resolution: clock "
    "| null}; a clock is {due_at, warning_at, elapsed_percent, paused, breached, "
    "met_at}. due_at is null while paused (unless already passed). targets are the "
    "business minutes the clocks run on; adjusted_by names the plugin that set them "
    "(null: the policy's own).")}


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


# Checked item by item by servicedesk.sla.steps.check_steps (errors name
# "steps.<n>.<field>"), which needs the policy's targets and the groups.
STEPS_DOC = (
    'Escalation steps, each {"key": unique [a-z0-9-]{1,40}, "metric": "response" | '
    '"resolution", "trigger": "warning" | "breach", "delay_minutes": wall-clock minutes '
    'after the due instant (breach only, default 0), "actions": a non-empty subset of '
    'notify_assignee, notify_group_manager, notify_requester, raise_level, next_line, '
    'raise_priority, "level": 1-3 (with raise_level), "group_id": the next-line group '
    '(optional, with next_line), "working_hours": hold notifications until the '
    "recipient's working hours (default true)}. Each fires once per ticket.")


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
    steps = fields.List(fields.Raw(), load_default=list, validate=validate.Length(max=20),
                        metadata={"description": STEPS_DOC})
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
    steps = fields.List(fields.Raw(), validate=validate.Length(max=20),
                        metadata={"description": STEPS_DOC})
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


# --- OLAs ------------------------------------------------------------------------------

OLA_FIELD_DOC = {"description": (
    "The ticket's OLA clocks (IT staff only; [] for requesters): one per group it was "
    "ever with that has an OLA, and metric: {group, metric: response | resolution, "
    "due_at, warning_at, elapsed_percent, paused, breached, met_at}. They count only "
    "the time the ticket was with that group; paused also while it is away.")}


class OlaSchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    group_id = Id(required=True, metadata={"description": "The group (one OLA per group)."})
    group = fields.Function(lambda o: o.group.name if o.group else None, dump_only=True)
    target_minutes = fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_MINUTES),
        metadata={"description": "Resolution within the group, in business minutes of "
                                 "the time the ticket is with it."})
    response_minutes = _minutes(load_default=None, metadata={
        "description": "Until someone of the group is assigned, in business minutes; "
                       "null: no response target."})
    calendar_id = Id(required=True)
    calendar = fields.Function(lambda o: o.calendar.name if o.calendar else None,
                               dump_only=True)
    pause_statuses = fields.List(
        fields.String(validate=validate.Length(min=1, max=80)),
        load_default=lambda: list(DEFAULT_PAUSE_STATUSES), validate=validate.Length(max=50),
        metadata={"description": 'Statuses that stop the clocks: "status" or '
                                 '"status:pending_reason".'})
    warning_percent = fields.Integer(strict=True, validate=validate.Range(1, 99),
                                     load_default=DEFAULT_WARNING_PERCENT)
    active = fields.Boolean(load_default=True)
    version = Version(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class OlaUpdateSchema(OlaSchema):
    group_id = Id()
    target_minutes = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_MINUTES))
    response_minutes = _minutes()
    calendar_id = Id()
    pause_statuses = fields.List(fields.String(validate=validate.Length(min=1, max=80)),
                                 validate=validate.Length(max=50))
    warning_percent = fields.Integer(strict=True, validate=validate.Range(1, 99))
    active = fields.Boolean()
    version = Version(required=True, load_only=True,
                      metadata={"description": "The version you last read."})
