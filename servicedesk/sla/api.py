"""REST endpoints of the SLA: calendars, policies and groups' OLAs (staff read, admins
write) and what breaches next. Thin: each parses, calls one service function, dumps."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.sla import admin, ola, service
from servicedesk.sla.schemas import (
    BreachQuerySchema,
    BreachSchema,
    CalendarSchema,
    CalendarUpdateSchema,
    OlaSchema,
    OlaUpdateSchema,
    PolicySchema,
    PolicyUpdateSchema,
)
from servicedesk.tickets.schemas import MAX_ID

blp = api_blueprint("api_sla", __name__,
                    "SLA: business-hours calendars, policies and what breaches next.")


def _id(value: int) -> int:
    # Ids beyond the 32-bit columns match nothing (and PostgreSQL would refuse them).
    return value if value <= MAX_ID else 0


@blp.route("/sla/calendars")
class Calendars(MethodView):
    @blp.response(200, CalendarSchema(many=True))
    def get(self):
        """Every SLA calendar (IT staff)."""
        return admin.list_calendars(actor())

    @blp.arguments(CalendarSchema)
    @blp.response(201, CalendarSchema)
    def post(self, data):
        """Create a calendar (admins): time zone, working intervals per weekday, holidays."""
        return admin.create_calendar(actor(), data)


@blp.route("/sla/calendars/<int:calendar_id>")
class CalendarDetail(MethodView):
    @blp.response(200, CalendarSchema)
    def get(self, calendar_id):
        """One calendar (IT staff)."""
        return admin.get_calendar(actor(), _id(calendar_id))

    @blp.arguments(CalendarUpdateSchema)
    @blp.response(200, CalendarSchema)
    def put(self, data, calendar_id):
        """Change a calendar (admins): the fields given; ``version`` must be the one you
        read, else 409. Open tickets follow on their next change or ``servicedesk sla
        repair``."""
        return admin.update_calendar(actor(), _id(calendar_id), data)


@blp.route("/sla/policies")
class Policies(MethodView):
    @blp.response(200, PolicySchema(many=True))
    def get(self):
        """Every SLA policy in match order (IT staff)."""
        return admin.list_policies(actor())

    @blp.arguments(PolicySchema)
    @blp.response(201, PolicySchema)
    def post(self, data):
        """Create a policy (admins): match rules, targets, calendar, pauses, warning."""
        return admin.create_policy(actor(), data)


@blp.route("/sla/policies/<int:policy_id>")
class PolicyDetail(MethodView):
    @blp.response(200, PolicySchema)
    def get(self, policy_id):
        """One policy (IT staff)."""
        return admin.get_policy(actor(), _id(policy_id))

    @blp.arguments(PolicyUpdateSchema)
    @blp.response(200, PolicySchema)
    def put(self, data, policy_id):
        """Change a policy (admins): the fields given; ``version`` must be the one you
        read, else 409."""
        return admin.update_policy(actor(), _id(policy_id), data)


@blp.route("/sla/olas")
class Olas(MethodView):
    @blp.response(200, OlaSchema(many=True))
    def get(self):
        """Every group's OLA, by support line and group (IT staff)."""
        return ola.list_olas(actor())

    @blp.arguments(OlaSchema)
    @blp.response(201, OlaSchema)
    def post(self, data):
        """Give a group its OLA (admins): resolution (and response) targets measured
        only while a ticket is with the group, calendar, pauses, warning."""
        return ola.create_ola(actor(), data)


@blp.route("/sla/olas/<int:ola_id>")
class OlaDetail(MethodView):
    @blp.response(200, OlaSchema)
    def get(self, ola_id):
        """One OLA (IT staff)."""
        return ola.get_ola(actor(), _id(ola_id))

    @blp.arguments(OlaUpdateSchema)
    @blp.response(200, OlaSchema)
    def put(self, data, ola_id):
        """Change an OLA (admins): the fields given; ``version`` must be the one you
        read, else 409."""
        return ola.update_ola(actor(), _id(ola_id), data)


@blp.route("/sla/breaches-next")
@blp.arguments(BreachQuerySchema, location="query", unknown=RAISE, error_status_code=400)
@blp.response(200, BreachSchema(many=True))
def breaches_next(args):
    """Open tickets you may see whose SLA runs out soonest, overdue first (IT staff)."""
    return service.breaches_next(actor(), args["limit"])
