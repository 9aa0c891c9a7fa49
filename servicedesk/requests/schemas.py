"""marshmallow schemas of the service-request API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from cmdb.schemas import CIRef
from servicedesk import cmdb_links
from servicedesk.catalogue.formdef import labelled_answers
from servicedesk.requests.service import SORTS
from servicedesk.requests.workflow import REQUEST_WORKFLOW
from servicedesk.sla.schemas import SLA_FIELD_DOC
from servicedesk.sla.service import sla_summary
from servicedesk.tickets.schemas import Id, Stripped, Version

_name = dict(allow_none=True, validate=validate.Length(max=150))


class RequestCreateSchema(ma.Schema):
    offering_id = Id(required=True)
    answers = fields.Dict(keys=fields.String(), load_default=dict,
                          metadata={"description": "The form's answers by field key"})
    title = Stripped(validate=validate.Length(min=1, max=200),
                     metadata={"description": "Defaults to the offering's name"})
    description = fields.String(validate=validate.Length(max=50_000))
    requester = fields.String(validate=validate.Length(min=1, max=150),
                              metadata={"description": "IT staff: on someone's behalf"})


class RequestUpdateSchema(ma.Schema):
    title = Stripped(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=50_000))
    group = fields.String(**_name)
    assignee = fields.String(**_name)
    affected_cis = fields.List(CIRef(), allow_none=True, validate=validate.Length(max=50),
                               metadata={"description": "The CIs it concerns (replaces them)"})
    version = Version(required=True, metadata={"description": "The version you last read."})


class RequestTransitionSchema(ma.Schema):
    to = fields.String(required=True, validate=validate.OneOf(REQUEST_WORKFLOW.states))
    version = Version()
    resolution_notes = Stripped(validate=validate.Length(min=1, max=50_000),
                                metadata={"description": "Required to move to fulfilled"})
    assignee = fields.String(validate=validate.Length(min=1, max=150))
    group = fields.String(validate=validate.Length(min=1, max=150))


class RequestQuerySchema(ma.Schema):
    status = DelimitedList(fields.String(validate=validate.OneOf(REQUEST_WORKFLOW.states)))
    open = fields.Boolean()
    group = fields.String(validate=validate.Length(min=1, max=150))
    assignee = fields.String(validate=validate.Length(min=1, max=150),
                             metadata={"description": "A username, `me` or `none`."})
    requester = fields.String(validate=validate.Length(min=1, max=150))
    offering_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    service_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    created_after = fields.AwareDateTime()
    created_before = fields.AwareDateTime()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))
    cursor = fields.String(validate=validate.Length(max=500))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


def _user(attr):
    return fields.Function(lambda t: getattr(t, attr).username if getattr(t, attr) else None)


class RequestSchema(ma.Schema):
    number = fields.String()
    kind = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String()
    is_open = fields.Boolean()
    priority = fields.Integer()
    offering_id = fields.Integer()
    offering = fields.Function(lambda r: r.offering.name)
    service_id = fields.Integer(allow_none=True)
    affected_cis = fields.Function(cmdb_links.affected_cis, metadata={
        "description": "The configuration items it concerns"})
    answers = fields.Dict()
    answers_labelled = fields.Function(
        lambda r: [{"label": label, "value": value}
                   for label, value, _type in labelled_answers(r.offering.form, r.answers)],
        metadata={"description": "The answers with their field labels, in form order"})
    approval = fields.String(metadata={
        "description": "not_required, pending, approved or rejected"})
    rejection_reason = fields.String(allow_none=True)
    requester = _user("requester")
    assignee = _user("assignee")
    group = fields.Function(lambda t: t.group.name if t.group else None)
    channel = fields.String()
    resolution_notes = fields.String(allow_none=True)
    reopen_count = fields.Integer()
    sla = fields.Function(sla_summary, metadata=SLA_FIELD_DOC)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    allowed_transitions = fields.Function(
        lambda t: getattr(t, "allowed_transitions", []),
        metadata={"description": "Statuses the caller may move it to now."})
    approvals = fields.Method("_approvals", metadata={
        "description": "Its approvals (see /approvals): label, rule, status, approvers, "
                       "decisions"})

    def _approvals(self, obj):
        from servicedesk.approvals.schemas import ApprovalSchema
        from servicedesk.requests.approval import panel

        if obj.approval == "not_required":
            return []
        return ApprovalSchema(many=True).dump(panel(obj, self.context_actor()))

    @staticmethod
    def context_actor():
        from flask import g

        return getattr(g, "actor", None)


class RequestListItemSchema(RequestSchema):
    """A request in a list: without ``approvals`` (a query per row; GET
    /requests/<n> has them)."""

    class Meta:
        exclude = ("approvals",)


class RequestPageSchema(ma.Schema):
    items = fields.List(fields.Nested(RequestListItemSchema))
    next_cursor = fields.String(allow_none=True)
