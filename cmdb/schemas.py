"""marshmallow schemas of the CMDB API (requests validated, responses documented).

Shapes only: the rules (class attribute schemas, references, permissions) are checked
by the services, which name each bad field.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from cmdb.attributes import ATTRIBUTE_TYPES, MAX_ID
from cmdb.impact import DEFAULT_DEPTH, DIRECTIONS, MAX_DEPTH
from cmdb.models import RELATION_TYPES, SERVICE_TYPES, STATUSES


class CIRef(fields.Field):
    """A configuration item named by its id (an integer) or its external key (text)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            if 1 <= value <= MAX_ID:
                return value
            raise ma.ValidationError(f"An id from 1 to {MAX_ID}.")
        if isinstance(value, str) and 0 < len(value.strip()) <= 200:
            return value.strip()
        raise ma.ValidationError("A CI id (integer) or external key (text of 1 to 200 "
                                 "characters).")


_name = dict(validate=validate.Length(min=1, max=200))


# --- classes -------------------------------------------------------------------------


class AttributeDefinitionSchema(ma.Schema):
    name = fields.String(metadata={"description": "a-z, 0-9 and _, starting with a letter"})
    type = fields.String(metadata={"enum": list(ATTRIBUTE_TYPES)})
    label = fields.String()
    required = fields.Boolean()
    help = fields.String()
    choices = fields.List(fields.String(), metadata={"description": "enum only"})
    ci_class = fields.String(metadata={"description": "reference only: the class (key) the "
                                                      "referenced CI must be (or descend from)"})
    inherited_from = fields.String(metadata={"description": "the ancestor class defining it"})


class ClassSchema(ma.Schema):
    key = fields.String()
    name = fields.String()
    parent = fields.Function(lambda c: c.parent_key)
    description = fields.String()
    service_type = fields.String(allow_none=True, metadata={
        "description": "business / technical: its CIs (and its subclasses') are services"})
    source = fields.String(metadata={"description": "admin, seed or plugin"})
    attributes = fields.List(fields.Nested(AttributeDefinitionSchema),
                             metadata={"description": "Its own attributes"})
    all_attributes = fields.Function(
        lambda c: c.all_attributes,
        metadata={"description": "Inherited (root first) and own attributes"})
    ci_count = fields.Function(lambda c: c.ci_count)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    version = fields.Integer()


class ClassCreateSchema(ma.Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    parent = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    description = fields.String(validate=validate.Length(max=5000))
    service_type = fields.String(allow_none=True, validate=validate.OneOf(SERVICE_TYPES))
    attributes = fields.List(fields.Raw(), validate=validate.Length(max=100), metadata={
        "description": "Attribute definitions: name, type, label, required, help, "
                       "choices (enum), ci_class (reference)"})


class ClassUpdateSchema(ClassCreateSchema):
    key = fields.String(validate=validate.Length(min=1, max=64))
    name = fields.String(validate=validate.Length(min=1, max=120))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_ID))


class SyncResultSchema(ma.Schema):
    created = fields.Integer()
    updated = fields.Integer()


# --- configuration items -------------------------------------------------------------


class CIBriefSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    external_key = fields.String(allow_none=True)
    class_ = fields.Function(lambda c: c.ci_class.key, data_key="class")
    class_name = fields.Function(lambda c: c.ci_class.name)
    status = fields.String()


class CISchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    class_ = fields.Function(lambda c: c.ci_class.key, data_key="class")
    class_name = fields.Function(lambda c: c.ci_class.name)
    status = fields.String()
    owner_group = fields.Function(lambda c: c.owner_group.name if c.owner_group else None)
    description = fields.String()
    attributes = fields.Dict(keys=fields.String())
    external_key = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    version = fields.Integer()


class CICreateSchema(ma.Schema):
    name = fields.String(required=True, **_name)
    class_ = fields.String(required=True, data_key="class", attribute="class",
                           validate=validate.Length(min=1, max=64))
    status = fields.String(validate=validate.OneOf(STATUSES))
    owner_group = fields.String(allow_none=True, validate=validate.Length(max=150))
    description = fields.String(validate=validate.Length(max=50_000))
    attributes = fields.Dict(keys=fields.String(validate=validate.Length(max=64)),
                             metadata={"description": "Values by attribute name, typed by "
                                                      "the class; references by CI id or "
                                                      "external key"})
    external_key = fields.String(allow_none=True, validate=validate.Length(max=200))


class CIUpdateSchema(CICreateSchema):
    name = fields.String(**_name)
    class_ = fields.String(data_key="class", attribute="class",
                           validate=validate.Length(min=1, max=64))
    attributes = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), metadata={
        "description": "Merged into the current attributes; null removes one"})
    version = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_ID),
                             metadata={"description": "The version you last read."})


class CIQuerySchema(ma.Schema):
    class_ = fields.String(data_key="class", attribute="class",
                           validate=validate.Length(min=1, max=64),
                           metadata={"description": "A class key; its subclasses included"})
    status = DelimitedList(fields.String(validate=validate.OneOf(STATUSES)))
    owner_group = fields.String(validate=validate.Length(min=1, max=150))
    q = fields.String(validate=validate.Length(min=1, max=200),
                      metadata={"description": "Part of the name (any case)"})
    external_key = fields.String(validate=validate.Length(min=1, max=200))
    attr = fields.List(fields.String(validate=validate.Length(min=1, max=300)),
                       validate=validate.Length(max=10),
                       metadata={"description": "name:value, repeatable; needs class="})
    cursor = fields.String(validate=validate.Length(max=500))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class CIPageSchema(ma.Schema):
    items = fields.List(fields.Nested(CISchema))
    next_cursor = fields.String(allow_none=True)


class CIHistorySchema(ma.Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.Function(lambda e: e.actor.username if e.actor else None)
    actor_name = fields.Function(lambda e: e.actor.name if e.actor else "System")
    action = fields.String()
    field = fields.String(allow_none=True)
    old_value = fields.String(allow_none=True)
    new_value = fields.String(allow_none=True)


# --- relations -----------------------------------------------------------------------


class RelationTypeSchema(ma.Schema):
    key = fields.String()
    name = fields.String(metadata={"description": "source <name> target"})
    inverse = fields.String(metadata={"description": "target <inverse> source"})
    source_depends = fields.Boolean(metadata={
        "description": "true: the source needs the target (it is impacted when the "
                       "target fails); false (part_of): the target needs the source"})


class RelationSchema(ma.Schema):
    id = fields.Integer()
    type = fields.String()
    name = fields.Function(lambda r: r.type_name)
    inverse_name = fields.Function(lambda r: r.inverse_name)
    source = fields.Nested(CIBriefSchema)
    target = fields.Nested(CIBriefSchema)
    created_at = fields.DateTime()


class RelationCreateSchema(ma.Schema):
    source = CIRef(required=True)
    type = fields.String(required=True, validate=validate.OneOf(RELATION_TYPES))
    target = CIRef(required=True)


class CIRelationsSchema(ma.Schema):
    outgoing = fields.List(fields.Nested(RelationSchema))
    incoming = fields.List(fields.Nested(RelationSchema))


# --- impact --------------------------------------------------------------------------


class ImpactQuerySchema(ma.Schema):
    direction = fields.String(load_default="downstream", validate=validate.OneOf(DIRECTIONS),
                              metadata={"description": "downstream: what needs this CI (is "
                                                       "impacted when it fails); upstream: "
                                                       "what it needs"})
    depth = fields.Integer(load_default=DEFAULT_DEPTH, validate=validate.Range(1, MAX_DEPTH))


class ImpactItemSchema(ma.Schema):
    ci = fields.Nested(CIBriefSchema)
    depth = fields.Integer()
    relation = fields.String(allow_none=True, metadata={"description": "type of the last hop"})
    path = fields.List(fields.Nested(CIBriefSchema), metadata={
        "description": "From the root to this CI (a shortest path)"})


class ServiceImpactSchema(ma.Schema):
    ci = fields.Nested(CIBriefSchema)
    service_type = fields.String()
    depth = fields.Integer()


class TicketBriefSchema(ma.Schema):
    number = fields.String()
    kind = fields.String()
    title = fields.String()
    status = fields.String()
    priority = fields.Integer()
    ci_ids = fields.List(fields.Integer(), metadata={
        "description": "Which of the CIs asked about it names as affected"})
    url = fields.String(allow_none=True, metadata={"description": "Its page, if it has one"})


class ImpactSchema(ma.Schema):
    root = fields.Nested(CIBriefSchema)
    direction = fields.String()
    depth = fields.Integer()
    truncated = fields.Boolean(metadata={"description": "The walk hit its cap: the nearest "
                                                        "CIs only"})
    count = fields.Integer()
    items = fields.List(fields.Nested(ImpactItemSchema))
    services = fields.List(fields.Nested(ServiceImpactSchema), metadata={
        "description": "Business and technical services affected (downstream only)"})
    open_tickets = fields.List(fields.Nested(TicketBriefSchema), metadata={
        "description": "Open tickets you may see on this CI or any CI listed"})


class TicketQuerySchema(ma.Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


# --- import --------------------------------------------------------------------------


class ImportSchema(ma.Schema):
    cis = fields.List(fields.Raw(), metadata={"description": "CI rows (see docs/operations.md)"})
    relations = fields.List(fields.Raw(), metadata={"description": "{source, type, target}"})
    csv = fields.String(metadata={"description": "Or: the text of a CSV file, alone"})


class ImportQuerySchema(ma.Schema):
    dry_run = fields.Boolean(load_default=False)


class ImportCountsSchema(ma.Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()


class ImportRelationCountsSchema(ma.Schema):
    created = fields.Integer()
    unchanged = fields.Integer()


class ImportReportSchema(ma.Schema):
    dry_run = fields.Boolean()
    cis = fields.Nested(ImportCountsSchema)
    relations = fields.Nested(ImportRelationCountsSchema)
