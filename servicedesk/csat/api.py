"""REST endpoints of satisfaction surveys. Thin: parse, call one service function, dump.

``POST /surveys/<token>`` takes no bearer token: the signed link is the credential (the
e-mail's recipient answers without an account session), so it lives on a blueprint of
its own without the API's authentication hook.
"""

from __future__ import annotations

import flask_smorest
from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import API_PREFIX, actor, api_blueprint, refuse_non_json_body
from servicedesk.csat import service
from servicedesk.csat.schemas import SurveyAnswerSchema, SurveySchema

blp = api_blueprint("api_csat", __name__, "Satisfaction surveys of resolved tickets.")

public_blp = flask_smorest.Blueprint(
    "api_csat_public", __name__, url_prefix=API_PREFIX,
    description="Answering a satisfaction survey with its signed link (no login).")
public_blp.before_request(refuse_non_json_body)


@blp.route("/incidents/<string:number>/survey")
class IncidentSurvey(MethodView):
    @blp.response(200, SurveySchema)
    def get(self, number):
        """The latest survey of an incident (its requester, or staff)."""
        return service.survey_of(actor(), number)


@public_blp.route("/surveys/<string:token>")
class SurveyAnswer(MethodView):
    @public_blp.arguments(SurveyAnswerSchema, unknown=RAISE, error_status_code=400)
    @public_blp.response(200, SurveySchema)
    def post(self, data, token):
        """Answer a survey once: ``rating`` 1–5 and an optional ``comment``."""
        return service.answer_by_token(token, data["rating"], data.get("comment"))
