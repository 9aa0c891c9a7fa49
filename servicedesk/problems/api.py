"""REST endpoints for problems and known errors: thin; parse, call one service function, dump.

Only IT staff: for anyone else every URL here answers 404 (the service decides).
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.incidents import service as incidents
from servicedesk.problems import known_errors, service
from servicedesk.problems.schemas import (
    KnownErrorQuerySchema,
    KnownErrorSchema,
    LinkedIncidentsSchema,
    ProblemLinkSchema,
    ProblemCreateSchema,
    ProblemPageSchema,
    ProblemQuerySchema,
    ProblemSchema,
    ProblemTransitionSchema,
    ProblemUpdateSchema,
    PublishedSchema,
    ProblemVersionSchema,
)
from servicedesk.problems.workflow import PROBLEM_WORKFLOW
from servicedesk.tickets import service as core
from servicedesk.tickets.schemas import AuditEntrySchema, CommentCreateSchema, CommentSchema

blp = api_blueprint("api_problems", __name__,
                    "Problems and the known-error database (IT staff only).")


def _present(problem):
    problem.allowed_transitions = PROBLEM_WORKFLOW.allowed(problem.status, actor().role)
    return problem


@blp.route("/problems")
class Problems(MethodView):
    @blp.arguments(ProblemQuerySchema, location="query", unknown=RAISE, error_status_code=400)
    @blp.response(200, ProblemPageSchema)
    def get(self, args):
        """List problems, filtered and sorted, with keyset paging."""
        sort = args.pop("sort")
        cursor = args.pop("cursor", None)
        limit = args.pop("limit")
        items, next_cursor = service.list_problems(actor(), args, sort, cursor, limit)
        return {"items": [_present(p) for p in items], "next_cursor": next_cursor}

    @blp.arguments(ProblemCreateSchema)
    @blp.response(201, ProblemSchema)
    def post(self, data):
        """Raise a problem, on its own or from incidents (``incidents``: numbers to link)."""
        return _present(service.create_problem(actor(), data))


@blp.route("/problems/<string:number>")
class ProblemDetail(MethodView):
    @blp.response(200, ProblemSchema)
    def get(self, number):
        """One problem."""
        return _present(service.get_problem(actor(), number))

    @blp.arguments(ProblemUpdateSchema)
    @blp.response(200, ProblemSchema)
    def patch(self, data, number):
        """Change fields; ``version`` must be the one you read, else 409."""
        return _present(service.update_problem(actor(), number, data))


@blp.route("/problems/<string:number>/transition", methods=["POST"])
@blp.arguments(ProblemTransitionSchema)
@blp.response(200, ProblemSchema)
def transition(data, number):
    """Move along the workflow; resolving tells (``resolve_incidents``: resolves) the
    linked open incidents."""
    return _present(service.transition_problem(actor(), number, data))


@blp.route("/problems/<string:number>/incidents")
class ProblemIncidents(MethodView):
    @blp.response(200, LinkedIncidentsSchema)
    def get(self, number):
        """The linked incidents you may see (and how many others are linked)."""
        items, hidden = service.linked_incidents(actor(), service.get_problem(actor(), number))
        return {"items": items, "hidden": hidden}

    @blp.arguments(ProblemLinkSchema)
    @blp.response(200, ProblemSchema)
    def post(self, data, number):
        """Link incidents (audited on both sides); the impact follows the count."""
        return _present(service.link_incidents(actor(), number, data["incidents"],
                                               data.get("version")))


@blp.route("/problems/<string:number>/incidents/<string:incident>", methods=["DELETE"])
@blp.arguments(ProblemVersionSchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, ProblemSchema)
def unlink(args, number, incident):
    """Unlink one incident (audited on both sides)."""
    return _present(service.unlink_incident(actor(), number, incident, args.get("version")))


@blp.route("/problems/<string:number>/publish-workaround", methods=["POST"])
@blp.arguments(ProblemVersionSchema)
@blp.response(200, PublishedSchema)
def publish(data, number):
    """Post the workaround as a public reply on every linked open incident that does
    not have this version of it yet (one transaction; repeating it posts nothing)."""
    return {"published_to": known_errors.publish_workaround(actor(), number,
                                                            data.get("version"))}


@blp.route("/problems/<string:number>/comments")
class ProblemComments(MethodView):
    @blp.response(200, CommentSchema(many=True))
    def get(self, number):
        """Comments and internal notes, oldest first."""
        return core.list_comments(service.get_problem(actor(), number), actor())

    @blp.arguments(CommentCreateSchema)
    @blp.response(201, CommentSchema)
    def post(self, data, number):
        """Add a comment (public) or an internal note."""
        return service.comment_problem(actor(), number, data["body"], data["public"])


@blp.route("/problems/<string:number>/history")
@blp.response(200, AuditEntrySchema(many=True))
def history(number):
    """Every change: who, when, field, old value, new value."""
    return core.list_history(service.get_problem(actor(), number), actor())


@blp.route("/known-errors")
@blp.arguments(KnownErrorQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, KnownErrorSchema(many=True))
def search(args):
    """Search the known errors: every word of ``q`` in title, workaround or root cause."""
    return known_errors.search_known_errors(actor(), args["q"], args.get("category_id"),
                                            args.get("ci_id"), args["limit"])


@blp.route("/incidents/<string:number>/known-errors")
@blp.response(200, KnownErrorSchema(many=True))
def suggestions(number):
    """Known errors that may explain this incident: same CI, same category, shared words."""
    service.check_staff(actor())
    incident = incidents.get_incident(actor(), number)
    return [s["problem"] for s in known_errors.suggest_for_incident(actor(), incident)]
