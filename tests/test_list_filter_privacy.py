"""A requester cannot use list filters to find out which colleagues and groups exist."""

import pytest


@pytest.mark.parametrize("query", [
    {"requester": "omid"}, {"requester": "nobody-by-this-name"},
    {"group": "Service Desk"}, {"group": "No Such Group"},
    {"assignee": "agent1"}, {"assignee": "ghost"},
])
def test_a_requesters_filter_naming_others_gets_one_answer_whether_the_name_exists_or_not(
        world, desk, query):
    response = world.api(desk.employee).get("/incidents", query_string=query)
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "forbidden_fields"
    assert set(error["fields"]) == set(query)


def test_a_requester_may_filter_by_themselves(world, desk):
    mine = world.incident(desk.employee)["number"]
    world.incident(desk.other_employee)
    api = world.api(desk.employee)
    for who in ("emma", "me"):
        response = api.get("/incidents", query_string={"requester": who})
        assert response.status_code == 200
        assert [i["number"] for i in response.get_json()["items"]] == [mine]


def test_staff_still_learn_that_a_name_is_unknown(world, desk):
    response = world.api(desk.agent).get("/incidents", query_string={"group": "No Such Group"})
    assert response.status_code == 422
    assert "group" in response.get_json()["error"]["fields"]
