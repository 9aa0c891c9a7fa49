"""marshmallow schemas of the incident API (requests validated, responses documented)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from cmdb.schemas import CIRef
from servicedesk import cmdb_links
from servicedesk.incidents.service import SORTS
from servicedesk.incidents.workflow import INCIDENT_WORKFLOW, PENDING_REASONS, RESOLUTION_CODES
from servicedesk.sla.schemas import OLA_FIELD_DOC, SLA_FIELD_DOC
from servicedesk.sla.service import sla_summary
from servicedesk.tickets.models import CHANNELS, LEVELS
from servicedesk.tickets.schemas import Id, Stripped, Version

_level = validate.OneOf(LEVELS)
_name = dict(allow_none=True, validate=validate.Length(max=150))


class IncidentCreateSchema(ma.Schema):
    title = Stripped(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=50_000))
    impact = fields.String(validate=_level)
    urgency = fields.String(validate=_level)
    category_id = Id(allow_none=True)
    subcategory_id = Id(allow_none=True)
    service_id = Id(allow_none=True)
    ci_id = Id(allow_none=True)
    affected_cis = fields.List(CIRef(), allow_none=True, validate=validate.Length(max=50),
                               metadata={"description": "CI ids or external keys (IT staff)"})
    requester = fields.String(validate=validate.Length(min=1, max=150))
    group = fields.String(**_name)
    assignee = fields.String(**_name)
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    major = fields.Boolean()
    # Accepted by the schema only so the service can say why they are refused.
    priority = fields.Integer(metadata={"description": "Not writable: follows from impact x urgency."})
    status = fields.String(metadata={"description": "Not writable: use /transition."})


class IncidentUpdateSchema(IncidentCreateSchema):
    title = Stripped(validate=validate.Length(min=1, max=200))
    version = Version(required=True, metadata={"description": "The version you last read."})


class TransitionSchema(ma.Schema):
    to = fields.String(required=True, validate=validate.OneOf(INCIDENT_WORKFLOW.states))
    version = Version()
    pending_reason = fields.String(validate=validate.OneOf(PENDING_REASONS))
    resolution_code = fields.String(validate=validate.OneOf(RESOLUTION_CODES))
    resolution_notes = Stripped(validate=validate.Length(min=1, max=50_000))
    assignee = fields.String(validate=validate.Length(min=1, max=150))
    group = fields.String(validate=validate.Length(min=1, max=150))


class EscalateSchema(ma.Schema):
    group = fields.String(validate=validate.Length(min=1, max=150))
    note = Stripped(validate=validate.Length(max=50_000))
    version = Version()


class IncidentQuerySchema(ma.Schema):
    status = DelimitedList(fields.String(validate=validate.OneOf(INCIDENT_WORKFLOW.states)))
    priority = DelimitedList(fields.Integer(validate=validate.Range(1, 5)))
    open = fields.Boolean()
    group = fields.String(validate=validate.Length(min=1, max=150))
    assignee = fields.String(validate=validate.Length(min=1, max=150),
                             metadata={"description": "A username, `me` or `none`."})
    requester = fields.String(validate=validate.Length(min=1, max=150))
    category_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    created_after = fields.AwareDateTime()
    created_before = fields.AwareDateTime()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))
    cursor = fields.String(validate=validate.Length(max=500))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


def _user(attr):
    return fields.Function(lambda t: getattr(t, attr).username if getattr(t, attr) else None)


def _user_name(attr):
    return fields.Function(lambda t: getattr(t, attr).name if getattr(t, attr) else None)


class IncidentSchema(ma.Schema):
    number = fields.String()
    kind = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String()
    is_open = fields.Boolean()
    impact = fields.String()
    urgency = fields.String()
    priority = fields.Integer()
    major = fields.Boolean()
    category_id = fields.Integer(allow_none=True)
    category = fields.Function(lambda t: t.category.name if t.category else None)
    subcategory_id = fields.Integer(allow_none=True)
    subcategory = fields.Function(lambda t: t.subcategory.name if t.subcategory else None)
    service_id = fields.Integer(allow_none=True)
    ci_id = fields.Integer(allow_none=True)
    affected_cis = fields.Function(cmdb_links.affected_cis, metadata={
        "description": "The configuration items it affects: id, name, class, external_key"})
    requester = _user("requester")
    requester_name = _user_name("requester")
    assignee = _user("assignee")
    assignee_name = _user_name("assignee")
    group = fields.Function(lambda t: t.group.name if t.group else None)
    support_line = fields.Integer(allow_none=True)
    channel = fields.String()
    pending_reason = fields.String(allow_none=True)
    resolution_code = fields.String(allow_none=True)
    resolution_notes = fields.String(allow_none=True)
    reopen_count = fields.Integer()
    escalation_count = fields.Integer()
    escalation_level = fields.Integer(
        metadata={"description": "Raised by SLA escalation steps; shown as a colour."})
    sla = fields.Function(sla_summary, metadata=SLA_FIELD_DOC)
    # Set by the API from the caller's role (incidents.api._present, incidents.listing).
    ola = fields.Function(lambda t: getattr(t, "ola", []), metadata=OLA_FIELD_DOC)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    first_response_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    open_seconds = fields.Function(
        lambda t: t.open_seconds,
        metadata={"description": "How long it has been open (until resolved), in seconds."},
    )
    version = fields.Integer()
    allowed_transitions = fields.Function(
        lambda t: getattr(t, "allowed_transitions", []),
        metadata={"description": "Statuses the caller may move it to now."},
    )


class IncidentWithImpactSchema(IncidentSchema):
    """What creating or changing an incident answers: the incident, and the services its
    affected CIs impact (GET /incidents/<number>/impact reads them later)."""

    impacted_services = fields.Function(cmdb_links.impacted_services, metadata={
        "description": "Services (business first) that need its affected CIs: id, name, "
                       "class, service_type, depth"})


class IncidentImpactSchema(ma.Schema):
    affected_cis = fields.List(fields.Dict())
    impacted_services = fields.List(fields.Dict())


class IncidentPageSchema(ma.Schema):
    items = fields.List(fields.Nested(IncidentSchema))
    next_cursor = fields.String(allow_none=True)
