"""marshmallow schemas of the change API (requests validated, responses documented)."""

from __future__ import annotations

from datetime import timezone

import marshmallow as ma
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from cmdb.schemas import CIRef
from servicedesk import cmdb_links
from servicedesk.changes.models import CHANGE_TYPES, REVIEW_OUTCOMES, RISK_LEVELS
from servicedesk.changes.workflow import CHANGE_WORKFLOW
from servicedesk.tickets.models import LEVELS
from servicedesk.tickets.schemas import Id, Stripped, Version

_text = dict(allow_none=True, validate=validate.Length(max=50_000))
_name = dict(allow_none=True, validate=validate.Length(max=150))


class UtcDateTime(fields.AwareDateTime):
    """An aware date-time, converted to UTC as the columns store it; refused (naming the
    field) when it leaves the years 1-9999 once in UTC (e.g. 0001-01-01T00:00+14:00),
    which would otherwise fail while being written (a 500)."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise ma.ValidationError("Not within the years 1-9999 in UTC.") from None


class ChangeCreateSchema(ma.Schema):
    title = Stripped(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=50_000))
    change_type = fields.String(validate=validate.OneOf(CHANGE_TYPES))
    template_id = Id(allow_none=True)
    impact = fields.String(validate=validate.OneOf(LEVELS))
    urgency = fields.String(validate=validate.OneOf(LEVELS))
    group = fields.String(**_name)
    assignee = fields.String(**_name)
    affected_cis = fields.List(CIRef(), allow_none=True, validate=validate.Length(max=50),
                               metadata={"description": "CI ids or external keys"})
    implementation_plan = Stripped(**_text)
    backout_plan = Stripped(**_text)
    test_plan = Stripped(**_text)
    planned_start = UtcDateTime(allow_none=True)
    planned_end = UtcDateTime(allow_none=True)
    risk_answers = fields.Dict(keys=fields.String(validate=validate.Length(max=64)),
                               values=fields.String(validate=validate.Length(max=64)),
                               allow_none=True,
                               metadata={"description": "{question key: option value}; "
                                                        "see GET /changes/risk-model"})
    # Accepted by the schema only so the service can say why they are refused.
    priority = fields.Integer(metadata={"description": "Not writable."})
    status = fields.String(metadata={"description": "Not writable: use /transition."})
    risk_level = fields.String(metadata={"description": "Not writable: from risk_answers."})
    requester = fields.String(metadata={"description": "Not writable: the raiser."})


class ChangeUpdateSchema(ChangeCreateSchema):
    title = Stripped(validate=validate.Length(min=1, max=200))
    version = Version(required=True, metadata={"description": "The version you last read."})


class ChangeTransitionSchema(ma.Schema):
    to = fields.String(required=True, validate=validate.OneOf(CHANGE_WORKFLOW.states))
    version = Version()
    actual_start = UtcDateTime()
    actual_end = UtcDateTime()
    review_outcome = fields.String(validate=validate.OneOf(REVIEW_OUTCOMES))
    review_notes = Stripped(validate=validate.Length(max=50_000))
    comment = Stripped(validate=validate.Length(max=50_000),
                       metadata={"description": "An internal note written with the step."})


class ChangeQuerySchema(ma.Schema):
    status = DelimitedList(fields.String(validate=validate.OneOf(CHANGE_WORKFLOW.states)))
    change_type = DelimitedList(fields.String(validate=validate.OneOf(CHANGE_TYPES)))
    risk_level = DelimitedList(fields.String(validate=validate.OneOf(RISK_LEVELS)))
    caused_incidents = fields.Boolean(
        metadata={"description": "true: only changes that caused incidents"})
    cursor = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1),
                            metadata={"description": "next_cursor of the previous page"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class ChangeLinkSchema(ma.Schema):
    kind = fields.String(required=True, validate=validate.OneOf(("problem", "incident")),
                         metadata={"description": "problem: it fixes; incident: it caused"})
    number = fields.String(required=True, validate=validate.Length(min=1, max=20))


class ChangeCalendarQuerySchema(ma.Schema):
    start = UtcDateTime(required=True)
    end = UtcDateTime(required=True)


def _user(attr):
    return fields.Function(lambda t: getattr(t, attr).username if getattr(t, attr) else None)


class ChangeBriefSchema(ma.Schema):
    number = fields.String()
    title = fields.String()
    status = fields.String()
    change_type = fields.String()
    risk_level = fields.String(allow_none=True)
    group = fields.Function(lambda t: t.group.name if t.group else None)
    assignee = _user("assignee")
    planned_start = fields.DateTime(allow_none=True)
    planned_end = fields.DateTime(allow_none=True)


class ChangeSchema(ChangeBriefSchema):
    kind = fields.String()
    description = fields.String()
    is_open = fields.Boolean()
    impact = fields.String()
    urgency = fields.String()
    priority = fields.Integer()
    template_id = fields.Integer(allow_none=True)
    risk_answers = fields.Dict(allow_none=True)
    implementation_plan = fields.String(allow_none=True)
    backout_plan = fields.String(allow_none=True)
    test_plan = fields.String(allow_none=True)
    actual_start = fields.DateTime(allow_none=True)
    actual_end = fields.DateTime(allow_none=True)
    review_required = fields.Boolean()
    review_outcome = fields.String(allow_none=True)
    review_notes = fields.String(allow_none=True)
    requester = _user("requester")
    support_line = fields.Integer(allow_none=True)
    affected_cis = fields.Function(cmdb_links.affected_cis)
    links = fields.Function(lambda t: getattr(t, "links", None) or {},
                            metadata={"description": "problems it fixes, incidents it caused"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    allowed_transitions = fields.Function(lambda t: getattr(t, "allowed_transitions", []))


class ChangePageSchema(ma.Schema):
    items = fields.List(fields.Nested(ChangeBriefSchema))
    next_cursor = fields.Integer(allow_none=True)


class ChangeConflictSchema(ma.Schema):
    number = fields.String()
    title = fields.String()
    status = fields.String()
    planned_start = fields.DateTime()
    planned_end = fields.DateTime()
    cis = fields.List(fields.Dict(), metadata={
        "description": "id, name, relation (same | depends_on_ours | ours_depends_on), our_ci"})


class ChangeTemplateSchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    name = Stripped(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=50_000))
    implementation_plan = fields.String(load_default="", validate=validate.Length(max=50_000))
    backout_plan = fields.String(load_default="", validate=validate.Length(max=50_000))
    test_plan = fields.String(load_default="", validate=validate.Length(max=50_000))
    active = fields.Boolean(load_default=True)
    version = fields.Integer(dump_only=True)


class ChangeTemplateUpdateSchema(ChangeTemplateSchema):
    name = Stripped(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=50_000))
    implementation_plan = fields.String(validate=validate.Length(max=50_000))
    backout_plan = fields.String(validate=validate.Length(max=50_000))
    test_plan = fields.String(validate=validate.Length(max=50_000))
    active = fields.Boolean()
    version = Version(required=True)


class ChangeFreezeWindowSchema(ma.Schema):
    id = fields.Integer(dump_only=True)
    name = Stripped(required=True, validate=validate.Length(min=1, max=200))
    reason = fields.String(load_default="", validate=validate.Length(max=5_000))
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True)
    active = fields.Boolean(load_default=True)
    version = fields.Integer(dump_only=True)


class ChangeFreezeWindowUpdateSchema(ChangeFreezeWindowSchema):
    name = Stripped(validate=validate.Length(min=1, max=200))
    reason = fields.String(validate=validate.Length(max=5_000))
    starts_at = UtcDateTime()
    ends_at = UtcDateTime()
    active = fields.Boolean()
    version = Version(required=True)


class ChangeCalendarSchema(ma.Schema):
    start = fields.DateTime()
    end = fields.DateTime()
    changes = fields.List(fields.Nested(ChangeBriefSchema))
    freeze_windows = fields.List(fields.Nested(ChangeFreezeWindowSchema))


class ChangeRiskModelSchema(ma.Schema):
    questions = fields.List(fields.Dict(), required=True, validate=validate.Length(max=50))
    thresholds = fields.Dict(required=True)
    routes = fields.Dict(required=True)
    version = fields.Integer(allow_none=True)


class ChangeDecisionSchema(ma.Schema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    comment = Stripped(validate=validate.Length(max=5000),
                       metadata={"description": "Required to reject."})
    approval_id = Id(metadata={"description": "Default: its latest pending approval."})
    version = Version(metadata={"description": "The approval's version you read."})
