"""marshmallow schemas of the catalogue API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from cmdb.schemas import CIRef
from servicedesk.catalogue.models import APPROVAL_RULES, SERVICE_KINDS
from servicedesk.tickets.schemas import Id, Stripped, Version

_group = dict(allow_none=True, validate=validate.Length(min=1, max=150))


class ServiceCreateSchema(ma.Schema):
    name = Stripped(required=True, validate=validate.Length(min=1, max=150))
    kind = fields.String(validate=validate.OneOf(SERVICE_KINDS))
    description = fields.String(validate=validate.Length(max=20_000))
    owner_group = fields.String(**_group)
    sla_policy_id = Id(allow_none=True)
    cis = fields.List(CIRef(), allow_none=True, validate=validate.Length(max=200),
                      metadata={"description": "Supporting CIs: ids or external keys"})
    active = fields.Boolean()


class ServiceUpdateSchema(ServiceCreateSchema):
    name = Stripped(validate=validate.Length(min=1, max=150))
    version = Version(required=True)


class OfferingCreateSchema(ma.Schema):
    service_id = Id(required=True)
    name = Stripped(required=True, validate=validate.Length(min=1, max=150))
    description = fields.String(validate=validate.Length(max=20_000))
    form = fields.Raw(allow_none=True, metadata={
        "description": 'The form as data: {"fields": [{"key", "label", "type", "required", '
                       '"help", "options"}]}'})
    approval_rule = fields.String(validate=validate.OneOf(APPROVAL_RULES))
    approval_group = fields.String(**_group)
    fulfilment_group = fields.String(**_group)
    active = fields.Boolean()


class OfferingUpdateSchema(OfferingCreateSchema):
    service_id = Id()
    name = Stripped(validate=validate.Length(min=1, max=150))
    version = Version(required=True)


class ListQuerySchema(ma.Schema):
    include_inactive = fields.Boolean(load_default=False,
                                      metadata={"description": "Admins only"})
    service_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))


def _name(attr):
    return fields.Function(lambda o: getattr(o, attr).name if getattr(o, attr) else None)


class OfferingSchema(ma.Schema):
    id = fields.Integer()
    service_id = fields.Integer()
    service = _name("service")
    name = fields.String()
    description = fields.String()
    form = fields.Raw()
    approval_rule = fields.String()
    approval_group = _name("approval_group")
    fulfilment_group = _name("fulfilment_group")
    active = fields.Boolean()
    version = fields.Integer()


class ServiceSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    description = fields.String()
    owner_group = _name("owner_group")
    sla_policy_id = fields.Integer(allow_none=True)
    sla_policy = _name("sla_policy")
    cis = fields.Method("_cis", metadata={
        "description": "Supporting CIs (id, name); IT staff only (the CMDB is theirs)"})
    active = fields.Boolean()
    version = fields.Integer()

    def _cis(self, service):
        from flask import g

        actor = getattr(g, "actor", None)
        if actor is None or not actor.is_staff:
            return []
        return [{"id": c.id, "name": c.name} for c in service.cis]
