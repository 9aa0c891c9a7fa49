"""REST endpoints for what every ticket kind shares: categories and the priority matrix."""

from __future__ import annotations

from flask.views import MethodView

from servicedesk.api import actor, api_blueprint
from servicedesk.tickets import admin
from servicedesk.tickets.schemas import CategorySchema, PriorityMatrixSchema
from servicedesk.tickets.service import priority_matrix, set_priority_matrix

blp = api_blueprint("api_tickets", __name__, "Categories and the impact x urgency priority matrix.")


def _matrix_body():
    return {"cells": [{"impact": i, "urgency": u, "priority": p}
                      for (i, u), p in sorted(priority_matrix().items())]}


@blp.route("/categories")
class Categories(MethodView):
    @blp.response(200, CategorySchema(many=True))
    def get(self):
        """Active categories and subcategories (``parent_id`` set), for every signed-in user."""
        return admin.list_categories()

    @blp.arguments(CategorySchema)
    @blp.response(201, CategorySchema)
    def post(self, data):
        """Create a category, or a subcategory with ``parent_id`` (admins)."""
        return admin.create_category(actor(), data["name"], data.get("parent_id"),
                                     data.get("default_group"))


@blp.route("/priority-matrix")
class Matrix(MethodView):
    @blp.response(200, PriorityMatrixSchema)
    def get(self):
        """The impact x urgency → priority matrix."""
        return _matrix_body()

    @blp.arguments(PriorityMatrixSchema)
    @blp.response(200, PriorityMatrixSchema)
    def put(self, data):
        """Change cells of the matrix (admins); new and re-triaged tickets use it."""
        set_priority_matrix(actor(), {(c["impact"], c["urgency"]): c["priority"]
                                      for c in data["cells"]})
        return _matrix_body()
