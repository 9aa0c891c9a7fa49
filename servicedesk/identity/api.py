"""REST endpoints for the caller, users and groups."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from servicedesk.api import actor, api_blueprint
from servicedesk.errors import Forbidden
from servicedesk.extensions import db
from servicedesk.identity import service
from servicedesk.identity.models import Group, User
from servicedesk.identity.schemas import GroupSchema, UserCreateSchema, UserSchema, UserUpdateSchema

blp = api_blueprint("api_identity", __name__, "Users, groups and support lines.")


def _staff_only():
    if not actor().is_staff:
        raise Forbidden("Only IT staff may list users and groups.")


@blp.route("/me")
@blp.response(200, UserSchema)
def me():
    """The user the token belongs to."""
    return actor()


@blp.route("/users")
class Users(MethodView):
    @blp.response(200, UserSchema(many=True))
    def get(self):
        """All users (IT staff only)."""
        _staff_only()
        return db.session.scalars(select(User).order_by(User.username)).all()

    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, data):
        """Create a local user (admins)."""
        return service.create_user(actor(), data["username"], data["email"], data["role"],
                                   groups=data["groups"], password=data["password"],
                                   display_name=data["display_name"], locale=data["locale"],
                                   timezone=data["timezone"])


@blp.route("/users/<string:username>", methods=["PATCH"])
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema)
def update_user(data, username):
    """Activate or deactivate a user, or set their working hours (admins).

    Deactivation ends their sessions and tokens. ``working_hours`` names the SLA
    calendar escalation notifications to them wait for (null: the policy's calendar).
    """
    if actor().role != "admin":
        raise Forbidden("Only admins manage users.")
    user = service.require_user(username)
    if "working_hours" in data:
        service.set_working_hours(actor(), user, data["working_hours"])
    if data.get("active") is False:
        service.deactivate_user(actor(), user)
    elif data.get("active") is True:
        service.activate_user(actor(), user)
    return user


@blp.route("/groups")
class Groups(MethodView):
    @blp.response(200, GroupSchema(many=True))
    def get(self):
        """All groups with their support line (IT staff only)."""
        _staff_only()
        return db.session.scalars(select(Group).order_by(Group.support_line, Group.name)).all()

    @blp.arguments(GroupSchema)
    @blp.response(201, GroupSchema)
    def post(self, data):
        """Create a group in support line 1, 2 or 3 (admins)."""
        return service.create_group(actor(), data["name"], data["support_line"],
                                    data["description"])
