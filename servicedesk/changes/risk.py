"""Risk assessment as data: a questionnaire whose answers score a risk level, and the
approval route each level (and the emergency type) takes.

The model lives in one row (``change_risk_model``) once an admin saves it; until then
``DEFAULT_MODEL`` applies. Each answer scores points; the sum against ``thresholds``
gives low / medium / high. A route names approvers: users (``@group_manager``: the
manager of the change's group), groups (by name), the rule (any / all / quorum), for
quorum how many, and optionally ``due_hours``: how long the approval may stay pending
before it escalates (else ``changes.approval.DUE_IN``).
"""

from __future__ import annotations

import copy

from flask_babel import gettext as _

from servicedesk.changes.models import RISK_LEVELS, RiskModel
from servicedesk.errors import Forbidden, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.types import utcnow

GROUP_MANAGER = "@group_manager"
RULES = ("any", "all", "quorum")
CAB = "CAB"
EMERGENCY_CAB = "Emergency CAB"

DEFAULT_MODEL = {
    "questions": [
        {"key": "users_affected", "text": "How many users does the change affect?",
         "options": [{"value": "none", "label": "None", "score": 0},
                     {"value": "some", "label": "Some (one team or site)", "score": 2},
                     {"value": "many", "label": "Many (the whole company)", "score": 4}]},
        {"key": "tested", "text": "Has the change been tested outside production?",
         "options": [{"value": "yes", "label": "Yes", "score": 0},
                     {"value": "partly", "label": "Partly", "score": 1},
                     {"value": "no", "label": "No", "score": 3}]},
        {"key": "backout", "text": "How hard is it to back out?",
         "options": [{"value": "easy", "label": "Easy (minutes)", "score": 0},
                     {"value": "hard", "label": "Hard (hours)", "score": 2},
                     {"value": "impossible", "label": "Not possible", "score": 4}]},
        {"key": "downtime", "text": "Does it need a service outage?",
         "options": [{"value": "no", "label": "No", "score": 0},
                     {"value": "yes", "label": "Yes", "score": 2}]},
    ],
    # A score of at least ``medium`` is medium risk, of at least ``high`` high risk.
    "thresholds": {"medium": 3, "high": 7},
    "routes": {
        "low": {"users": [GROUP_MANAGER], "groups": [], "rule": "any"},
        "medium": {"users": [GROUP_MANAGER], "groups": [CAB], "rule": "any"},
        "high": {"users": [], "groups": [CAB], "rule": "quorum", "quorum": 2},
        "emergency": {"users": [], "groups": [EMERGENCY_CAB], "rule": "any"},
    },
}
ROUTE_KEYS = RISK_LEVELS + ("emergency",)


def risk_model() -> dict:
    """The model in force: the saved one, else the default."""
    row = db.session.get(RiskModel, 1)
    if row is None:
        return {**copy.deepcopy(DEFAULT_MODEL), "version": None}
    return {"questions": row.questions, "thresholds": row.thresholds, "routes": row.routes,
            "version": row.version}


def assess(answers, model: dict | None = None) -> str:
    """The risk level ``answers`` ({question key: option value}) score; every question
    must be answered with one of its options (a 422 naming ``risk_answers``)."""
    model = model or risk_model()
    if not isinstance(answers, dict):
        raise ValidationError(_("The risk answers must be an object."),
                              fields={"risk_answers": [_("Not an object.")]})
    errors, score = {}, 0
    keys = {q["key"] for q in model["questions"]}
    for question in model["questions"]:
        value = answers.get(question["key"])
        scores = {o["value"]: o["score"] for o in question["options"]}
        if value not in scores:
            errors[question["key"]] = _("Answer one of: %(values)s.", values=", ".join(scores))
        else:
            score += scores[value]
    for key in sorted(set(answers) - keys):
        errors[str(key)] = _("Not a question of the questionnaire.")
    if errors:
        raise ValidationError(
            _("The risk questionnaire is not answered correctly."),
            fields={"risk_answers": [f"{k}: {v}" for k, v in errors.items()]})
    thresholds = model["thresholds"]
    if score >= thresholds["high"]:
        return "high"
    if score >= thresholds["medium"]:
        return "medium"
    return "low"


def route_for(change, model: dict | None = None) -> dict:
    model = model or risk_model()
    key = "emergency" if change.change_type == "emergency" else change.risk_level
    return model["routes"][key]


# --- administration ------------------------------------------------------------------


def _check_model(data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    questions = data.get("questions")
    if not isinstance(questions, list) or not questions:
        errors["questions"] = [_("At least one question.")]
    else:
        seen = set()
        for i, q in enumerate(questions):
            options = q.get("options") if isinstance(q, dict) else None
            ok = (isinstance(q, dict) and isinstance(q.get("key"), str) and q["key"]
                  and isinstance(q.get("text"), str) and q["text"].strip()
                  and isinstance(options, list) and options
                  and all(isinstance(o, dict) and isinstance(o.get("value"), str) and o["value"]
                          and isinstance(o.get("score"), int)
                          and not isinstance(o.get("score"), bool) and 0 <= o["score"] <= 100
                          for o in options))
            if not ok:
                errors.setdefault("questions", []).append(
                    _("Question %(n)s needs a key, a text and options (value, whole score "
                      "0-100).", n=i + 1))
            elif q["key"] in seen:
                errors.setdefault("questions", []).append(
                    _("Question key %(key)s is used twice.", key=q["key"]))
            else:
                seen.add(q["key"])
    thresholds = data.get("thresholds")
    if not (isinstance(thresholds, dict) and all(
            isinstance(thresholds.get(k), int) and not isinstance(thresholds.get(k), bool)
            for k in ("medium", "high")) and 0 < thresholds["medium"] <= thresholds["high"]):
        errors["thresholds"] = [_("medium and high: whole numbers, 0 < medium <= high.")]
    routes = data.get("routes")
    if not isinstance(routes, dict) or set(routes) != set(ROUTE_KEYS):
        errors["routes"] = [_("One route for each of: %(keys)s.", keys=", ".join(ROUTE_KEYS))]
    else:
        for key, route in routes.items():
            problem = _check_route(route)
            if problem:
                errors.setdefault("routes", []).append(f"{key}: {problem}")
    if errors:
        raise ValidationError(_("The risk model is invalid."), fields=errors)
    clean = {}
    for key, route in routes.items():
        clean[key] = {"users": route.get("users", []), "groups": route.get("groups", []),
                      "rule": route["rule"]}
        if route["rule"] == "quorum":
            clean[key]["quorum"] = route["quorum"]
        if route.get("due_hours") is not None:
            clean[key]["due_hours"] = route["due_hours"]
    return {"questions": questions, "thresholds": {k: thresholds[k] for k in ("medium", "high")},
            "routes": clean}


def _check_route(route) -> str | None:
    if not isinstance(route, dict):
        return _("Not an object.")
    users, groups = route.get("users", []), route.get("groups", [])
    if not (isinstance(users, list) and isinstance(groups, list)
            and all(isinstance(x, str) and x for x in users + groups)):
        return _("users and groups are lists of names.")
    if not users and not groups:
        return _("Name at least one approver or group.")
    if route.get("rule") not in RULES:
        return _("rule is one of: %(rules)s.", rules=", ".join(RULES))
    if route["rule"] == "quorum":
        quorum = route.get("quorum")
        if not isinstance(quorum, int) or isinstance(quorum, bool) or quorum < 1:
            return _("A quorum rule needs quorum (a whole number of at least 1).")
    due = route.get("due_hours")
    if due is not None and (not isinstance(due, int) or isinstance(due, bool)
                            or not 1 <= due <= 24 * 365):
        return _("due_hours is a whole number of hours from 1 to 8760.")
    return None


def save_risk_model(actor: User, data: dict) -> dict:
    if actor.role != "admin":
        raise Forbidden(_("Only admins change the risk model."))
    data = dict(data)
    version = data.pop("version", None)
    model = _check_model(data)
    row = db.session.get(RiskModel, 1)
    if row is None:
        row = RiskModel(id=1)
        db.session.add(row)
    elif version is not None and version != row.version:
        from servicedesk.errors import Conflict

        raise Conflict(_("Someone else changed the risk model; reload it."),
                       fields={"version": [_("Stale.")]}, code="stale_version")
    row.questions, row.thresholds, row.routes = (model["questions"], model["thresholds"],
                                                 model["routes"])
    row.updated_at, row.updated_by_id = utcnow(), actor.id
    db.session.commit()
    return risk_model()
