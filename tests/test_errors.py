"""Every API error has one shape, {"error": {"code", "message", "fields"}}, and is never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from servicedesk.extensions import db
from servicedesk.tickets.models import AuditEntry, Comment, Ticket


def _error(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    for name, reasons in error["fields"].items():
        assert isinstance(name, str)
        assert isinstance(reasons, list) and reasons and all(isinstance(r, str) for r in reasons)
    return error


def _rows():
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Ticket, Comment, AuditEntry))


@pytest.fixture
def number(world, desk):
    return world.incident(desk.employee)["number"]


@pytest.fixture
def token(desk):
    from servicedesk.identity.service import issue_token

    return issue_token(desk.agent)


def _raw(client, method, path, token, data, content_type="application/json"):
    return client.open("/api/v1" + path, method=method, data=data, content_type=content_type,
                       headers={"Authorization": f"Bearer {token}"})


ENDPOINTS = [
    ("POST", "/incidents"),
    ("PATCH", "/incidents/{n}"),
    ("POST", "/incidents/{n}/transition"),
    ("POST", "/incidents/{n}/comments"),
    ("POST", "/incidents/{n}/escalate"),
    ("PUT", "/priority-matrix"),
    ("POST", "/categories"),
    ("POST", "/users"),
    ("PATCH", "/users/agent1"),
    ("POST", "/groups"),
]


def test_malformed_json_is_a_400(client, number, token):
    before = _rows()
    for method, path in ENDPOINTS:
        for data in ('{"title": "x"', "{'title': 'x'}", "nul", "\xff\xfe", "{\"title\": NaN}x",
                     '{"title": "x"}{"title": "y"}', "{" * 5000):
            error = _error(_raw(client, method, path.format(n=number), token, data), 400)
            assert error["code"] == "bad_json", (method, path, data, error)
    assert _rows() == before


def test_a_json_body_that_is_not_an_object_is_a_400(client, number, token):
    before = _rows()
    for method, path in ENDPOINTS:
        for data in ('[{"title": "x"}]', "[]", '"title"', "42", "null", "true"):
            error = _error(_raw(client, method, path.format(n=number), token, data), 400)
            assert error["code"] == "bad_json", (method, path, data, error)
    assert _rows() == before


@pytest.mark.parametrize("data", ["[" * 100_000, '{"a":' * 100_000,
                                  '{"title": "x", "description": ' + "[" * 50_000 + "]" * 50_000
                                  + "}"])
def test_json_nested_too_deeply_is_a_400_not_a_crash(client, number, token, data):
    before = _rows()
    for method, path in ENDPOINTS[:5]:
        error = _error(_raw(client, method, path.format(n=number), token, data), 400)
        assert (error["code"], list(error["fields"])) == ("bad_json", ["json"])
    assert _rows() == before


@pytest.mark.parametrize("data, field", [
    ('{"title": "\\ud800"}', "title"),
    ('{"title": "x", "description": "a\\udfffb"}', "description"),
    ('{"title": "x", "description": ["\\udc00"]}', "description"),
    ('{"title": "x", "\\ud83d": 1}', "\\ud83d"),
])
def test_text_with_an_unpaired_surrogate_is_a_422_naming_the_field(client, token, data, field):
    error = _error(_raw(client, "POST", "/incidents", token, data), 422)
    assert error["code"] == "invalid_text"
    assert list(error["fields"]) == [field]
    assert _rows() == (0, 0, 0)


def test_a_properly_paired_surrogate_escape_is_ordinary_text(client, desk, token):
    response = _raw(client, "POST", "/incidents", token, '{"title": "Broken \\ud83d\\udca5"}')
    assert response.status_code == 201
    assert response.get_json()["title"] == "Broken \U0001f4a5"


@pytest.mark.parametrize("body, field", [
    ({"title": 5}, "title"),
    ({"title": ["x"]}, "title"),
    ({"title": {"a": 1}}, "title"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": None}, "title"),
    ({"description": "x"}, "title"),
    ({"title": "x", "impact": 3}, "impact"),
    ({"title": "x", "impact": "critical"}, "impact"),
    ({"title": "x", "urgency": None}, "urgency"),
    ({"title": "x", "category_id": "1"}, "category_id"),
    ({"title": "x", "category_id": 1.5}, "category_id"),
    ({"title": "x", "category_id": True}, "category_id"),
    ({"title": "x", "category_id": -1}, "category_id"),
    ({"title": "x", "ci_id": 2**31}, "ci_id"),
    ({"title": "x", "service_id": 10**30}, "service_id"),
    ({"title": "x", "major": "very"}, "major"),
    ({"title": "x", "channel": "pigeon"}, "channel"),
    ({"title": "x", "description": 7}, "description"),
    ({"title": "x", "description": "d" * 50_001}, "description"),
])
def test_wrong_types_on_create_are_a_422_naming_the_field(world, desk, body, field):
    before = _rows()
    error = _error(world.api(desk.agent).post("/incidents", json=body), 422)
    assert field in error["fields"], error
    assert _rows() == before


@pytest.mark.parametrize("body, field", [
    ({"to": 5}, "to"),
    ({}, "to"),
    ({"to": "resolved", "resolution_code": 1, "resolution_notes": "x"}, "resolution_code"),
    ({"to": "in_progress", "version": "1"}, "version"),
    ({"to": "in_progress", "version": 0}, "version"),
    ({"to": "pending", "pending_reason": ["awaiting_vendor"]}, "pending_reason"),
])
def test_wrong_types_on_a_transition_are_a_422_naming_the_field(world, desk, number, body,
                                                                field):
    before = _rows()
    error = _error(world.api(desk.agent).post(f"/incidents/{number}/transition", json=body), 422)
    assert field in error["fields"]
    assert _rows() == before


@pytest.mark.parametrize("body, field", [
    ({"body": 5}, "body"),
    ({"body": "x", "public": "maybe"}, "public"),
    ({"body": "x", "public": None}, "public"),
    ({"body": "x" * 50_001}, "body"),
    ({}, "body"),
])
def test_wrong_types_on_a_comment_are_a_422_naming_the_field(world, desk, number, body, field):
    before = _rows()
    error = _error(world.api(desk.agent).post(f"/incidents/{number}/comments", json=body), 422)
    assert field in error["fields"]
    assert _rows() == before


def test_a_body_that_is_not_json_is_a_400_and_changes_nothing(client, number, token):
    before = _rows()
    for method, path in ENDPOINTS:
        for content_type in ("text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", None):
            response = _raw(client, method, path.format(n=number), token,
                            '{"title": "x", "group": "Engineering"}', content_type)
            error = _error(response, 400)
            assert (error["code"], list(error["fields"])) == ("bad_json", ["json"]), (
                method, path, content_type)
    assert _rows() == before


def test_a_form_encoded_escalation_is_not_carried_out_without_its_fields(client, world, desk,
                                                                          number, token):
    """The group the client named must not be silently dropped, escalating elsewhere."""
    response = _raw(client, "POST", f"/incidents/{number}/escalate", token,
                    "group=Engineering", "application/x-www-form-urlencoded")
    _error(response, 400)
    assert world.api(desk.admin).get(f"/incidents/{number}").get_json()["support_line"] == 1


def test_an_empty_body_reads_as_an_empty_object(client, number, token):
    error = _error(_raw(client, "POST", "/incidents", token, ""), 422)
    assert list(error["fields"]) == ["title"]
    error = _error(_raw(client, "POST", f"/incidents/{number}/transition", token, ""), 422)
    assert list(error["fields"]) == ["to"]


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic YWdlbnQxOnBhc3N3b3Jk"},
    {"Authorization": "Token sdk_abc"},
])
def test_a_missing_token_is_a_401(client, headers):
    for method, path in (("GET", "/incidents"), ("POST", "/incidents"), ("GET", "/me"),
                         ("GET", "/incidents/INC000001"), ("GET", "/priority-matrix")):
        error = _error(client.open("/api/v1" + path, method=method, headers=headers,
                                   json={"title": "x"}), 401)
        assert error["code"] == "unauthorized"


@pytest.mark.parametrize("token", [
    "sdk_not-a-real-token", "nonsense", "sdk_" + "a" * 300, "sdk_' OR 1=1 --", "sdk_%00",
    "sdk_\u00e9\u00e9",
])
def test_a_bad_token_is_a_401(client, desk, token):
    error = _error(client.get("/api/v1/incidents",
                              headers={"Authorization": f"Bearer {token}"}), 401)
    assert error["code"] == "unauthorized"


def test_a_revoked_token_is_a_401(world, desk):
    from servicedesk.identity.models import ApiToken
    from servicedesk.types import utcnow

    api = world.api(desk.agent)
    for row in db.session.scalars(select(ApiToken)):
        row.revoked_at = utcnow()
    db.session.commit()
    _error(api.get("/incidents"), 401)


def test_401_comes_before_404_so_numbers_cannot_be_probed_anonymously(client, number):
    for path in (f"/incidents/{number}", "/incidents/INC999999"):
        assert client.get("/api/v1" + path).status_code == 401


@pytest.mark.parametrize("path", [
    "/incidents/INC999999", "/incidents/INC999999/comments", "/incidents/INC999999/history",
    "/incidents/nonsense", "/incidents/INC000001%27%20OR%201=1", "/nope",
    "/incidents/INC000001/nope",
])
def test_unknown_things_are_a_404(world, desk, path):
    error = _error(world.api(desk.admin).get(path), 404)
    assert error["code"] == "not_found"


def test_an_unknown_number_is_a_404_on_every_verb(world, desk):
    api = world.api(desk.admin)
    for response in (
        api.patch("/incidents/INC999999", json={"title": "x", "version": 1}),
        api.post("/incidents/INC999999/transition", json={"to": "in_progress"}),
        api.post("/incidents/INC999999/comments", json={"body": "x"}),
        api.post("/incidents/INC999999/escalate", json={}),
    ):
        assert _error(response, 404)["code"] == "not_found"


def test_an_unknown_user_is_a_404(world, desk):
    assert _error(world.api(desk.admin).patch("/users/nobody", json={"active": False}),
                  404)["code"] == "not_found"


def test_a_wrong_method_is_a_405(world, desk, number):
    before = _rows()
    api = world.api(desk.admin)
    for method, path in [
        ("DELETE", "/incidents/{n}"), ("PUT", "/incidents/{n}"), ("POST", "/incidents/{n}"),
        ("DELETE", "/incidents"), ("PATCH", "/incidents"), ("GET", "/incidents/{n}/transition"),
        ("DELETE", "/incidents/{n}/comments"), ("PUT", "/incidents/{n}/history"),
        ("GET", "/incidents/{n}/escalate"), ("DELETE", "/priority-matrix"), ("POST", "/me"),
    ]:
        error = _error(api.request(method, path.format(n=number), json={}), 405)
        assert error["code"] == "method_not_allowed", (method, path)
    assert _rows() == before


def test_the_openapi_document_needs_no_token_and_describes_the_error_shape(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schemas = response.get_json()["components"]["schemas"]
    assert set(schemas["Error"]["properties"]) == {"error"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "fields"}


def test_a_patch_that_fails_in_the_middle_leaves_nothing_half_done(world, desk, number):
    """One request, several changes, one of them invalid: none of them is kept."""
    api = world.api(desk.agent)
    before = api.get(f"/incidents/{number}").get_json()
    rows = _rows()
    response = api.patch(f"/incidents/{number}", json={
        "title": "New title", "impact": "high", "assignee": "netagent", "version": 1})
    _error(response, 422)
    after = api.get(f"/incidents/{number}").get_json()
    for field in ("title", "impact", "priority", "assignee", "status", "version"):
        assert after[field] == before[field], field
    assert _rows() == rows


def test_api_errors_are_never_cached(world, desk):
    response = world.api(desk.admin).get("/incidents/INC999999")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
