"""marshmallow schemas of the directory admin API: configuration, test, sync, reports.

The schemas check shapes and lengths (each error names its field); what needs the
directory's grammar (URIs, DNs, filters, attribute names), the file system (the CA
file) or the database (mapped groups) is checked by ``servicedesk.ldap.service``.
The bind password is ``load_only``: no response ever carries it.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from servicedesk.identity.models import ROLES
from servicedesk.ldap.models import FLAVOURS, REPORT_ACTIONS, SECURITY_MODES
from servicedesk.tickets.schemas import MAX_ID, Stripped, Version

ATTRIBUTE_KEYS = ("username", "email", "display_name", "phone", "department", "title",
                  "manager")


class MappingSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    ldap_group = Stripped(required=True, validate=validate.Length(min=1, max=1000),
                          metadata={"description": "The directory group's DN."})
    group = Stripped(load_default="", validate=validate.Length(max=150),
                     metadata={"description": "A servicedesk group its members join."})
    role = fields.String(load_default="", validate=validate.OneOf(("", *ROLES)),
                         metadata={"description": "The role its members get (the highest "
                                                  "of all their groups' roles wins)."})


_attributes = fields.Dict(
    keys=fields.String(validate=validate.OneOf(ATTRIBUTE_KEYS)),
    values=fields.String(validate=validate.Length(max=64)),
    metadata={"description": "Which directory attribute holds each user field: "
                             + ", ".join(ATTRIBUTE_KEYS) + " (username is required; \"\" "
                             "leaves a field unmapped)."},
)


class LdapConfigSchema(ma.Schema):
    """The configuration as admins read it (never the bind password)."""

    enabled = fields.Boolean()
    flavour = fields.String()
    server_uris = fields.List(fields.String())
    security = fields.String()
    ca_file = fields.String()
    tls_verify = fields.Boolean()
    timeout_seconds = fields.Integer()
    bind_dn = fields.String()
    bind_password_set = fields.Function(lambda c: bool(c.bind_password),
                                        metadata={"description": "Whether a bind password "
                                                                 "is stored (it is never "
                                                                 "shown)."})
    user_base_dn = fields.String()
    user_filter = fields.String()
    disabled_filter = fields.String()
    group_base_dn = fields.String()
    group_filter = fields.String()
    group_member_attribute = fields.String()
    id_attribute = fields.String()
    change_attribute = fields.String()
    attributes = fields.Dict(keys=fields.String(), values=fields.String())
    group_mappings = fields.List(fields.Dict())
    default_role = fields.String()
    page_size = fields.Integer()
    sync_interval_minutes = fields.Integer()
    max_deactivate_percent = fields.Integer()
    updated_at = fields.DateTime()
    version = fields.Integer()


class LdapConfigUpdateSchema(ma.Schema):
    """A change of the configuration: the fields given; ``version`` as read (once the
    configuration exists). ``bind_password`` is write-only; leave it out to keep it."""

    class Meta:
        unknown = ma.RAISE

    enabled = fields.Boolean()
    flavour = fields.String(validate=validate.OneOf(FLAVOURS))
    server_uris = fields.List(Stripped(validate=validate.Length(min=1, max=1000)),
                              validate=validate.Length(max=10))
    security = fields.String(validate=validate.OneOf(SECURITY_MODES),
                             metadata={"description": "ldaps (ldaps:// URIs), starttls "
                                                      "(ldap:// URIs upgraded) or plain "
                                                      "(no TLS: test directories only)."})
    ca_file = Stripped(validate=validate.Length(max=1000),
                       metadata={"description": "PEM file of the CA(s) to trust; empty: the "
                                                "system's CAs."})
    tls_verify = fields.Boolean(metadata={"description": "False switches certificate "
                                                         "validation off (logged; test "
                                                         "directories only)."})
    timeout_seconds = fields.Integer(strict=True, validate=validate.Range(min=1, max=120))
    bind_dn = Stripped(validate=validate.Length(max=1000))
    bind_password = fields.String(load_only=True, validate=validate.Length(max=1000))
    user_base_dn = Stripped(validate=validate.Length(max=1000))
    user_filter = Stripped(validate=validate.Length(max=2000))
    disabled_filter = Stripped(validate=validate.Length(max=2000))
    group_base_dn = Stripped(validate=validate.Length(max=1000))
    group_filter = Stripped(validate=validate.Length(max=2000))
    group_member_attribute = Stripped(validate=validate.Length(max=64))
    id_attribute = Stripped(validate=validate.Length(max=64))
    change_attribute = Stripped(validate=validate.Length(max=64))
    attributes = _attributes
    group_mappings = fields.List(fields.Nested(MappingSchema), validate=validate.Length(max=500))
    default_role = fields.String(validate=validate.OneOf(("requester", "agent")))
    page_size = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000))
    sync_interval_minutes = fields.Integer(strict=True, validate=validate.Range(min=0,
                                                                                max=10080))
    max_deactivate_percent = fields.Integer(strict=True, validate=validate.Range(min=0,
                                                                                 max=100))
    version = Version()


class PresetSchema(ma.Schema):
    flavour = fields.String()
    values = fields.Dict()


class TestResultSchema(ma.Schema):
    ok = fields.Boolean()
    server = fields.String(allow_none=True)
    steps = fields.List(fields.Dict(), metadata={"description": "[{step, ok, detail}]"})
    warnings = fields.List(fields.String())


class SyncRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    dry_run = fields.Boolean(load_default=False)
    full = fields.Boolean(load_default=False, metadata={"description": "A full sync even "
                                                                       "where incremental "
                                                                       "would do."})
    allow_mass_deactivation = fields.Boolean(
        load_default=False, metadata={"description": "Run even if more users would be "
                                                     "deactivated than the configured share."})


class ReportSchema(ma.Schema):
    id = fields.Integer()
    status = fields.String()
    trigger = fields.String()
    actor = fields.Function(lambda r: r.actor.username if getattr(r, "actor", None) else None)
    dry_run = fields.Boolean()
    mode = fields.String()
    server = fields.String()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    directory_users = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    deactivated = fields.Integer()
    reactivated = fields.Integer()
    unchanged = fields.Integer()
    errors = fields.Integer()
    message = fields.String()


class ItemSchema(ma.Schema):
    id = fields.Integer()
    action = fields.String()
    dn = fields.String()
    username = fields.String()
    detail = fields.String()


class ReportDetailSchema(ReportSchema):
    items = fields.List(fields.Nested(ItemSchema))
    next_after = fields.Integer(allow_none=True)


class ReportQuerySchema(ma.Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    before = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))


class ItemQuerySchema(ma.Schema):
    action = fields.String(load_default=None, validate=validate.OneOf(REPORT_ACTIONS))
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))
