"""No input, however odd, makes the API answer 5xx or break its error shape."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = ["title", "description", "impact", "urgency", "category_id", "subcategory_id",
          "service_id", "ci_id", "requester", "group", "assignee", "channel", "major",
          "priority", "status", "version", "to", "pending_reason", "resolution_code",
          "resolution_notes", "body", "public", "note", "cursor", "sort"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
    st.floats(allow_nan=False), st.text(max_size=30),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**64, 1e308]),
    st.sampled_from(["high", "low", "new", "resolved", "pending", "fixed", "agent1",
                     "Service Desk", "awaiting_requester", "", " ", "\x00", "💥", "*"]),
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
BODIES = st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
QUERY_KEYS = ["status", "priority", "open", "group", "assignee", "requester", "category_id",
              "created_after", "created_before", "sort", "cursor", "limit", "x", "password_hash"]
QUERIES = st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=20), max_size=4)
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _assert_clean(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert set(error) == {"code", "message", "fields"}


@pytest.fixture
def fuzz_incident(world, desk):
    apis = {"employee": world.api(desk.employee), "agent": world.api(desk.agent),
            "admin": world.api(desk.admin)}
    number = world.incident(desk.employee)["number"]
    return {"apis": apis, "number": number}


@FUZZ
@given(body=BODIES, path=st.sampled_from(["/incidents", "/incidents/{n}", "/incidents/{n}/transition",
                                          "/incidents/{n}/comments", "/incidents/{n}/escalate"]),
       who=st.sampled_from(["employee", "agent", "admin"]))
def test_no_body_makes_the_incident_api_fail(world, desk, fuzz_incident, body, path, who):
    api = fuzz_incident["apis"][who]
    method = "PATCH" if path == "/incidents/{n}" else "POST"
    _assert_clean(api.request(method, path.format(n=fuzz_incident["number"]), json=body))


@FUZZ
@given(query=QUERIES)
def test_no_query_makes_the_incident_list_fail(world, desk, fuzz_incident, query):
    _assert_clean(fuzz_incident["apis"]["agent"].get("/incidents", query_string=query))


@pytest.mark.parametrize("body", [
    {"title": "x", "category_id": 2**31},
    {"title": "x", "ci_id": 2**40},
    {"title": "x", "service_id": 2**63 - 1},
    {"title": "x", "subcategory_id": 0},
])
def test_ids_beyond_the_database_range_are_refused_naming_the_field(world, desk, body):
    response = world.api(desk.agent).post("/incidents", json=body)
    assert response.status_code == 422
    bad = (set(body) - {"title"}).pop()
    assert bad in response.get_json()["error"]["fields"]
    assert world.api(desk.admin).get("/incidents").get_json()["items"] == []


@pytest.mark.parametrize("body, field", [({"title": "a\x00b"}, "title"),
                                         ({"title": "x", "group": "\x00"}, "group"),
                                         ({"title": "x", "description": ["\x00"]}, "description")])
def test_text_with_nul_characters_is_refused_naming_the_field(world, desk, body, field):
    response = world.api(desk.agent).post("/incidents", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "nul_character"
    assert set(error["fields"]) == {field}
    assert world.api(desk.admin).get("/incidents").get_json()["items"] == []


def test_nul_in_a_query_or_path_is_a_clean_4xx(world, desk):
    api = world.api(desk.agent)
    assert api.get("/incidents", query_string={"group": "\x00"}).status_code == 422
    assert api.get("/incidents/INC%00").status_code == 404


def test_an_oversized_body_is_refused_before_it_is_read(world, desk, app):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = world.api(desk.agent).post("/incidents", json={"title": "x" * 2000})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert world.api(desk.admin).get("/incidents").get_json()["items"] == []
