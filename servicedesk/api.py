"""REST API plumbing: the flask-smorest ``Api``, bearer-token auth and our error body.

Every API error is ``{"error": {"code", "message", "fields"}}``: ``fields`` maps each
bad field to its reasons. flask-smorest's default error body is replaced by ours.
"""

from __future__ import annotations

import logging

import flask_smorest
import marshmallow as ma
from flask import g, jsonify, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from servicedesk.errors import ServiceError, Unauthorized
from servicedesk.extensions import read_only_transaction
from servicedesk.identity.models import User
from servicedesk.identity.service import user_for_token

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "Stable machine-readable code"})
    message = ma.fields.String(metadata={"description": "What went wrong, for people"})
    fields = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Each bad field and its reasons"},
    )


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorDetailSchema)


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        # create_app registers one handler for the API and the pages alike.
        pass


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX + "/") or request.path == API_PREFIX


def error_body(status: int, code: str, message: str, fields: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


def _flatten_webargs(messages) -> tuple[dict, str | None]:
    """webargs nests errors by location ({"json": {"title": [...]}}); flatten them."""
    fields, location = {}, None
    for loc, errors in (messages or {}).items():
        location = location or loc
        if isinstance(errors, dict):
            for name, reasons in errors.items():
                if isinstance(reasons, dict):  # nested schema errors
                    reasons = [f"{k}: {v}" for k, v in reasons.items()]
                elif not isinstance(reasons, list):
                    reasons = [str(reasons)]
                fields[str(name)] = [str(r) for r in reasons]
        else:
            fields[loc] = [str(e) for e in (errors if isinstance(errors, list) else [errors])]
    return fields, location


def api_http_error(exc: HTTPException):
    data = getattr(exc, "data", None) or {}
    if "messages" in data:
        fields, location = _flatten_webargs(data["messages"])
        if location in ("query", "querystring"):
            return error_body(400, "bad_query", _("The query has unknown or invalid parameters."),
                              fields)
        if set(fields) == {"json"} or fields.get("_schema") == ["Invalid input type."]:
            return error_body(400, "bad_json", _("The body must be a JSON object."), fields)
        return error_body(exc.code or 422, "validation_error",
                          _("Some fields are missing or invalid."), fields)
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_body(exc.code or 500, code, exc.description or exc.name)


def api_service_error(exc: ServiceError):
    return error_body(exc.status, exc.code, exc.message, exc.fields)


def authenticate_api_request() -> None:
    """``before_request`` of every API blueprint: the actor comes from a bearer token."""
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(_("Send an API token: Authorization: Bearer <token>."))
    with read_only_transaction():  # a POST's write lock waits for its service call
        user = user_for_token(token.strip())
    if user is None:
        raise Unauthorized(_("The API token is unknown, revoked, or its user is deactivated."))
    g.actor = user


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def refuse_non_json_body() -> None:
    """``before_request`` of every API blueprint: a body must be JSON.

    webargs reads a body of any other content type as no body at all, so a form-encoded
    ``group=...`` sent to an endpoint whose fields are all optional would be silently
    ignored and the request carried out without it. An empty body still means ``{}``.
    """
    if request.method in _BODY_METHODS and not request.is_json and (
        request.content_length or request.headers.get("Transfer-Encoding")
    ):
        raise ServiceError(
            _("The body must be a JSON object sent with Content-Type: application/json."),
            fields={"json": [_("Unsupported content type %(type)s.",
                               type=repr(request.mimetype or "none"))]},
            code="bad_json",
        )


def actor() -> User:
    return g.actor


def api_blueprint(name: str, import_name: str, description: str) -> flask_smorest.Blueprint:
    blp = flask_smorest.Blueprint(name, import_name, url_prefix=API_PREFIX,
                                  description=description)
    blp.before_request(authenticate_api_request)
    blp.before_request(refuse_non_json_body)
    return blp
