"""REST endpoints of the service catalogue: admins manage, everyone reads active items."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.catalogue import service
from servicedesk.catalogue.schemas import (
    ListQuerySchema,
    OfferingCreateSchema,
    OfferingSchema,
    OfferingUpdateSchema,
    ServiceCreateSchema,
    ServiceSchema,
    ServiceUpdateSchema,
)

blp = api_blueprint("api_catalogue", __name__,
                    "Service catalogue: services and the offerings employees request.")


@blp.route("/catalogue/services")
class Services(MethodView):
    @blp.arguments(ListQuerySchema(only=("include_inactive",)), location="query",
                   unknown=RAISE, error_status_code=400)
    @blp.response(200, ServiceSchema(many=True))
    def get(self, args):
        """Active services (admins may ask for inactive ones too)."""
        return service.list_services(actor(), args["include_inactive"])

    @blp.arguments(ServiceCreateSchema)
    @blp.response(201, ServiceSchema)
    def post(self, data):
        """Add a service (admins)."""
        return service.create_service(actor(), data)


@blp.route("/catalogue/services/<int:service_id>")
class ServiceDetail(MethodView):
    @blp.response(200, ServiceSchema)
    def get(self, service_id):
        """One service."""
        return service.get_service(actor(), service_id)

    @blp.arguments(ServiceUpdateSchema)
    @blp.response(200, ServiceSchema)
    def patch(self, data, service_id):
        """Change a service (admins); ``version`` must be the one you read, else 409."""
        return service.update_service(actor(), service_id, data)


@blp.route("/catalogue/offerings")
class Offerings(MethodView):
    @blp.arguments(ListQuerySchema, location="query", unknown=RAISE, error_status_code=400)
    @blp.response(200, OfferingSchema(many=True))
    def get(self, args):
        """Active offerings, optionally of one service."""
        return service.list_offerings(actor(), args.get("service_id"), args["include_inactive"])

    @blp.arguments(OfferingCreateSchema)
    @blp.response(201, OfferingSchema)
    def post(self, data):
        """Add an offering with its form definition (admins)."""
        return service.create_offering(actor(), data)


@blp.route("/catalogue/offerings/<int:offering_id>")
class OfferingDetail(MethodView):
    @blp.response(200, OfferingSchema)
    def get(self, offering_id):
        """One offering, with its form definition."""
        return service.get_offering(actor(), offering_id)

    @blp.arguments(OfferingUpdateSchema)
    @blp.response(200, OfferingSchema)
    def patch(self, data, offering_id):
        """Change an offering (admins); ``version`` must be the one you read, else 409."""
        return service.update_offering(actor(), offering_id, data)
