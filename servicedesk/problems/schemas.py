"""marshmallow schemas of the problem API (requests validated, responses documented)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from cmdb.schemas import CIRef
from servicedesk import cmdb_links
from servicedesk.problems.service import SORTS
from servicedesk.problems.workflow import INCIDENT_RESOLUTION_CODES, PROBLEM_WORKFLOW
from servicedesk.tickets.models import LEVELS
from servicedesk.tickets.schemas import Id, Stripped, Version

_level = validate.OneOf(LEVELS)
_name = dict(allow_none=True, validate=validate.Length(max=150))
_text = dict(allow_none=True, validate=validate.Length(max=50_000))
_number = fields.String(validate=validate.Length(min=1, max=20))


class ProblemCreateSchema(ma.Schema):
    title = Stripped(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=50_000))
    impact = fields.String(validate=_level, metadata={
        "description": "The impact you judge; linked incidents can raise it (see impact)."})
    urgency = fields.String(validate=_level)
    category_id = Id(allow_none=True)
    subcategory_id = Id(allow_none=True)
    service_id = Id(allow_none=True)
    ci_id = Id(allow_none=True)
    affected_cis = fields.List(CIRef(), allow_none=True, validate=validate.Length(max=50))
    group = fields.String(**_name)
    assignee = fields.String(**_name)
    root_cause = Stripped(**_text)
    workaround = Stripped(**_text)
    incidents = fields.List(fields.String(validate=validate.Length(min=1, max=20)),
                            validate=validate.Length(max=100),
                            metadata={"description": "Incident numbers to link at once."})
    # Accepted by the schema only so the service can say why they are refused.
    priority = fields.Integer(metadata={"description": "Not writable."})
    status = fields.String(metadata={"description": "Not writable: use /transition."})
    requester = fields.String(metadata={"description": "Not writable."})


class ProblemUpdateSchema(ProblemCreateSchema):
    title = Stripped(validate=validate.Length(min=1, max=200))
    version = Version(required=True, metadata={"description": "The version you last read."})


class ProblemTransitionSchema(ma.Schema):
    to = fields.String(required=True, validate=validate.OneOf(PROBLEM_WORKFLOW.states))
    version = Version()
    root_cause = Stripped(validate=validate.Length(min=1, max=50_000))
    workaround = Stripped(validate=validate.Length(min=1, max=50_000))
    resolution_notes = Stripped(validate=validate.Length(min=1, max=50_000))
    resolve_incidents = fields.Boolean(load_default=False, metadata={
        "description": "When resolving: also resolve the linked open incidents."})
    incident_resolution_code = fields.String(
        validate=validate.OneOf(INCIDENT_RESOLUTION_CODES),
        metadata={"description": "Their resolution code (default fixed)."})


class ProblemLinkSchema(ma.Schema):
    incidents = fields.List(fields.String(validate=validate.Length(min=1, max=20)),
                            required=True, validate=validate.Length(min=1, max=100))
    version = Version()


class ProblemVersionSchema(ma.Schema):
    version = Version()


class ProblemQuerySchema(ma.Schema):
    status = DelimitedList(fields.String(validate=validate.OneOf(PROBLEM_WORKFLOW.states)))
    open = fields.Boolean()
    known_error = fields.Boolean()
    category_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    ci_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    group = fields.String(validate=validate.Length(min=1, max=150))
    assignee = fields.String(validate=validate.Length(min=1, max=150))
    q = fields.String(validate=validate.Length(max=200))
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))
    cursor = fields.String(validate=validate.Length(max=500))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class KnownErrorQuerySchema(ma.Schema):
    q = fields.String(load_default="", validate=validate.Length(max=200))
    category_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    ci_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


def _username(attr):
    return fields.Function(lambda t: getattr(t, attr).username if getattr(t, attr) else None)


class ProblemSchema(ma.Schema):
    number = fields.String()
    kind = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String()
    is_open = fields.Boolean()
    impact = fields.String(metadata={
        "description": "The higher of base_impact and what the linked incidents imply "
                       "(1-2: medium, 3 or more: high)."})
    base_impact = fields.String()
    urgency = fields.String()
    priority = fields.Integer()
    incident_count = fields.Integer(metadata={"description": "How many incidents are linked."})
    category_id = fields.Integer(allow_none=True)
    category = fields.Function(lambda t: t.category.name if t.category else None)
    subcategory_id = fields.Integer(allow_none=True)
    service_id = fields.Integer(allow_none=True)
    ci_id = fields.Integer(allow_none=True)
    affected_cis = fields.Function(cmdb_links.affected_cis)
    raised_by = _username("requester")
    assignee = _username("assignee")
    group = fields.Function(lambda t: t.group.name if t.group else None)
    root_cause = fields.String(allow_none=True)
    workaround = fields.String(allow_none=True)
    workaround_version = fields.Integer()
    known_error_at = fields.DateTime(allow_none=True)
    resolution_notes = fields.String(allow_none=True)
    reopen_count = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    allowed_transitions = fields.Function(lambda t: getattr(t, "allowed_transitions", []))


class ProblemPageSchema(ma.Schema):
    items = fields.List(fields.Nested(ProblemSchema))
    next_cursor = fields.String(allow_none=True)


class LinkedIncidentSchema(ma.Schema):
    number = fields.Function(lambda link: link.incident.number)
    title = fields.Function(lambda link: link.incident.title)
    status = fields.Function(lambda link: link.incident.status)
    priority = fields.Function(lambda link: link.incident.priority)
    linked_by = fields.Function(lambda link: link.linked_by.username if link.linked_by else None)
    linked_at = fields.DateTime()
    published_version = fields.Integer(metadata={
        "description": "The workaround version published to it (0: none)."})


class LinkedIncidentsSchema(ma.Schema):
    items = fields.List(fields.Nested(LinkedIncidentSchema))
    hidden = fields.Integer(metadata={"description": "Linked incidents you may not see."})


class PublishedSchema(ma.Schema):
    published_to = fields.List(fields.String())


class KnownErrorSchema(ma.Schema):
    number = fields.String()
    title = fields.String()
    status = fields.String()
    root_cause = fields.String(allow_none=True)
    workaround = fields.String(allow_none=True)
    category_id = fields.Integer(allow_none=True)
    incident_count = fields.Integer()
    known_error_at = fields.DateTime()
