"""REST endpoints for changes: thin; each parses, calls one service function, dumps."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.approvals.schemas import ApprovalSchema
from servicedesk.changes import admin, approval, calendar, risk, service
from servicedesk.changes.conflicts import find_conflicts
from servicedesk.changes.schemas import (
    ChangeCalendarQuerySchema,
    ChangeCalendarSchema,
    ChangeCreateSchema,
    ChangeDecisionSchema,
    ChangePageSchema,
    ChangeQuerySchema,
    ChangeSchema,
    ChangeTransitionSchema,
    ChangeUpdateSchema,
    ChangeConflictSchema,
    ChangeFreezeWindowSchema,
    ChangeFreezeWindowUpdateSchema,
    ChangeLinkSchema,
    ChangeRiskModelSchema,
    ChangeTemplateSchema,
    ChangeTemplateUpdateSchema,
)
from servicedesk.tickets import service as core
from servicedesk.tickets.schemas import AuditEntrySchema, CommentCreateSchema, CommentSchema

blp = api_blueprint("api_changes", __name__,
                    "Changes: plan, assess, authorise, implement and review changes.")


@blp.before_request
def _staff_only():
    # After authentication (registered first): for a requester no change URL exists,
    # whatever the request carries (404 before any body is validated).
    admin.check_staff(actor())


def _present(change):
    change.allowed_transitions = service.allowed_transitions(change, actor())
    change.links = service.linked(change)
    return change


@blp.route("/changes")
class Changes(MethodView):
    @blp.arguments(ChangeQuerySchema, location="query", unknown=RAISE, error_status_code=400)
    @blp.response(200, ChangePageSchema)
    def get(self, args):
        """List changes (IT staff), newest first; ``caused_incidents=true`` reports the
        changes that caused incidents."""
        cursor = args.pop("cursor", None)
        limit = args.pop("limit")
        items, next_cursor = service.list_changes(actor(), args, cursor, limit)
        return {"items": items, "next_cursor": next_cursor}

    @blp.arguments(ChangeCreateSchema)
    @blp.response(201, ChangeSchema)
    def post(self, data):
        """Raise a change (a draft); a standard change names its template."""
        return _present(service.create_change(actor(), data))


@blp.route("/changes/calendar")
@blp.arguments(ChangeCalendarQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, ChangeCalendarSchema)
def change_calendar(args):
    """Changes planned in [start, end) and the freeze windows there (at most 100 days)."""
    return calendar.calendar(actor(), args["start"], args["end"])


@blp.route("/changes/risk-model")
class RiskModel(MethodView):
    @blp.response(200, ChangeRiskModelSchema)
    def get(self):
        """The risk questionnaire, thresholds and approval routes in force."""
        admin.check_staff(actor())
        return risk.risk_model()

    @blp.arguments(ChangeRiskModelSchema)
    @blp.response(200, ChangeRiskModelSchema)
    def put(self, data):
        """Replace the risk model (admins)."""
        return risk.save_risk_model(actor(), data)


@blp.route("/changes/templates")
class Templates(MethodView):
    @blp.response(200, ChangeTemplateSchema(many=True))
    def get(self):
        """Standard-change templates."""
        return admin.list_templates(actor())

    @blp.arguments(ChangeTemplateSchema)
    @blp.response(201, ChangeTemplateSchema)
    def post(self, data):
        """Define a pre-approved standard-change template (admins)."""
        return admin.create_template(actor(), data)


@blp.route("/changes/templates/<int(max=2147483647):template_id>")
class Template(MethodView):
    @blp.response(200, ChangeTemplateSchema)
    def get(self, template_id):
        """One template."""
        return admin.get_template(actor(), template_id)

    @blp.arguments(ChangeTemplateUpdateSchema)
    @blp.response(200, ChangeTemplateSchema)
    def patch(self, data, template_id):
        """Change a template (admins); ``version`` as read, else 409."""
        return admin.update_template(actor(), template_id, data)


@blp.route("/changes/freeze-windows")
class FreezeWindows(MethodView):
    @blp.response(200, ChangeFreezeWindowSchema(many=True))
    def get(self):
        """Freeze windows, earliest first."""
        return admin.list_freeze_windows(actor())

    @blp.arguments(ChangeFreezeWindowSchema)
    @blp.response(201, ChangeFreezeWindowSchema)
    def post(self, data):
        """Define a freeze window (admins)."""
        return admin.create_freeze_window(actor(), data)


@blp.route("/changes/freeze-windows/<int(max=2147483647):window_id>")
class FreezeWindow(MethodView):
    @blp.response(200, ChangeFreezeWindowSchema)
    def get(self, window_id):
        """One freeze window."""
        return admin.get_freeze_window(actor(), window_id)

    @blp.arguments(ChangeFreezeWindowUpdateSchema)
    @blp.response(200, ChangeFreezeWindowSchema)
    def patch(self, data, window_id):
        """Change a freeze window (admins); ``version`` as read, else 409."""
        return admin.update_freeze_window(actor(), window_id, data)

    @blp.response(204)
    def delete(self, window_id):
        """Remove a freeze window (admins)."""
        admin.delete_freeze_window(actor(), window_id)


@blp.route("/changes/<string:number>")
class ChangeDetail(MethodView):
    @blp.response(200, ChangeSchema)
    def get(self, number):
        """One change."""
        return _present(service.get_change(actor(), number))

    @blp.arguments(ChangeUpdateSchema)
    @blp.response(200, ChangeSchema)
    def patch(self, data, number):
        """Change fields; ``version`` must be the one you read, else 409. Plan, window,
        CIs and risk are fixed once the change goes to authorization."""
        return _present(service.update_change(actor(), number, data))


@blp.route("/changes/<string:number>/transition", methods=["POST"])
@blp.arguments(ChangeTransitionSchema)
@blp.response(200, ChangeSchema)
def transition(data, number):
    """Move along the workflow (``{"to": ...}`` plus what that step requires)."""
    return _present(service.transition_change(actor(), number, data))


@blp.route("/changes/<string:number>/conflicts")
@blp.response(200, ChangeConflictSchema(many=True))
def conflicts(number):
    """Live changes overlapping its planned window on its CIs or CIs related to them."""
    return find_conflicts(service.get_change(actor(), number))


@blp.route("/changes/<string:number>/approvals")
class ChangeApprovals(MethodView):
    @blp.response(200, ApprovalSchema(many=True))
    def get(self, number):
        """Its approvals: approvers, rule, decisions, whether you may decide."""
        return approval.approvals_of(actor(), service.get_change(actor(), number))

    @blp.arguments(ChangeDecisionSchema)
    @blp.response(200, ChangeSchema)
    def post(self, data, number):
        """Approve or reject (with a comment) its pending approval; you may not decide
        on a change you raised."""
        change, _decided = service.decide_approval(actor(), number, data)
        return _present(change)


@blp.route("/changes/<string:number>/links", methods=["POST"])
@blp.arguments(ChangeLinkSchema)
@blp.response(200, ChangeSchema)
def add_link(data, number):
    """Link a problem it fixes or an incident it caused."""
    return _present(service.link(actor(), number, data["kind"], data["number"]))


@blp.route("/changes/<string:number>/links/<any(problem, incident):kind>/<string:other>",
           methods=["DELETE"])
@blp.response(200, ChangeSchema)
def remove_link(number, kind, other):
    """Remove a link."""
    return _present(service.unlink(actor(), number, kind, other))


@blp.route("/changes/<string:number>/comments")
class ChangeComments(MethodView):
    @blp.response(200, CommentSchema(many=True))
    def get(self, number):
        """Comments and internal notes, oldest first."""
        return core.list_comments(service.get_change(actor(), number), actor())

    @blp.arguments(CommentCreateSchema)
    @blp.response(201, CommentSchema)
    def post(self, data, number):
        """Comment on a change."""
        return service.comment_change(actor(), number, data["body"], data["public"])


@blp.route("/changes/<string:number>/history")
@blp.response(200, AuditEntrySchema(many=True))
def history(number):
    """Every change to it: who, when, field, old value, new value."""
    return core.list_history(service.get_change(actor(), number), actor())
