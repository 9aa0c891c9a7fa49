"""REST endpoints of the directory connection (admins only), under /api/v1/admin/ldap.
Thin: each parses, calls one service function, dumps."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.ldap import service
from servicedesk.ldap.schemas import (
    ItemQuerySchema,
    LdapConfigSchema,
    LdapConfigUpdateSchema,
    PresetSchema,
    ReportDetailSchema,
    ReportQuerySchema,
    ReportSchema,
    SyncRequestSchema,
    TestResultSchema,
)
from servicedesk.tickets.schemas import MAX_ID

blp = api_blueprint("api_ldap", __name__,
                    "Directory (LDAP / Active Directory): configuration, test, sync, reports.")


@blp.route("/admin/ldap/config")
class Config(MethodView):
    @blp.response(200, LdapConfigSchema)
    def get(self):
        """The directory settings (admins). The bind password is never returned:
        ``bind_password_set`` says whether one is stored. Version 0: nothing saved yet
        (the OpenLDAP preset is shown)."""
        return service.get_config(actor())

    @blp.arguments(LdapConfigUpdateSchema)
    @blp.response(200, LdapConfigSchema)
    def put(self, data):
        """Change the settings (admins): the fields given, validated as a whole; ``version``
        must be the one read (409 if stale; not needed for the first save). Leave
        ``bind_password`` out to keep the stored one."""
        return service.update_config(actor(), data)


@blp.route("/admin/ldap/presets/<string:flavour>")
@blp.response(200, PresetSchema)
def preset(flavour):
    """The defaults of a directory flavour: ``openldap`` or ``ad`` (Active Directory)."""
    return service.preset(actor(), flavour)


@blp.route("/admin/ldap/test", methods=["POST"])
@blp.arguments(LdapConfigUpdateSchema)
@blp.response(200, TestResultSchema)
def test(data):
    """Test the connection (admins): connect (with failover), bind, read the root DSE,
    the user base with a sample user, the group base and mapped groups. The body may
    hold unsaved changes to try on top of the saved settings; nothing is saved."""
    data.pop("version", None)
    return service.test_connection(actor(), data)


@blp.route("/admin/ldap/sync", methods=["POST"])
@blp.arguments(SyncRequestSchema)
@blp.response(200, ReportSchema)
@blp.alt_response(202, schema=ReportSchema, description="Queued on a worker.")
def sync(data):
    """Run a sync (or a dry run) now (admins). With Redis it is queued for a worker
    (202, status queued: poll the report); without, it runs in this request (200)."""
    report = service.start_sync(actor(), "api", dry_run=data["dry_run"], full=data["full"],
                                allow_mass_deactivation=data["allow_mass_deactivation"])
    return report, (202 if report.status in ("queued", "running") else 200)


@blp.route("/admin/ldap/reports")
@blp.arguments(ReportQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, ReportSchema(many=True))
def reports(args):
    """Sync reports, newest first (admins); ``before`` an id to page back."""
    return service.list_reports(actor(), args["limit"], args["before"])


@blp.route("/admin/ldap/reports/<int:report_id>")
@blp.arguments(ItemQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, ReportDetailSchema)
def report(args, report_id):
    """One report with its items (admins): each created, updated, deactivated and
    reactivated user and each error with the DN and the reason. ``action`` filters,
    ``after`` continues from ``next_after``."""
    row = service.get_report(actor(), report_id if report_id <= MAX_ID else 0)
    items, next_after = service.report_items(actor(), row, args["action"], args["after"],
                                             args["limit"])
    row.items, row.next_after = items, next_after  # for the schema only, not stored
    return row
