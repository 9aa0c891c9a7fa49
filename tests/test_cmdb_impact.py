"""Relations and impact analysis: typed, directional, no duplicates; what a failure
affects (downstream) and what a CI needs (upstream), computed by one recursive query
on SQLite and PostgreSQL alike, cycle-safe, with depth limit and shortest paths."""

from __future__ import annotations

from sqlalchemy import event

from cmdb.impact import analyse
from cmdb_support import estate, payroll  # noqa: F401  (fixtures)
from servicedesk.extensions import db


def _impact(api, ci_id, query=""):
    response = api.get(f"/cmdb/cis/{ci_id}/impact?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _by_name(body):
    return {item["ci"]["name"]: item for item in body["items"]}


# --- relations -----------------------------------------------------------------------


def test_relations_are_made_by_external_key_and_shown_from_both_ends(world, desk, estate):
    estate.ci("web", "application")
    estate.ci("vm-9", "virtual_machine")
    manager = world.api(desk.manager)
    created = manager.post("/cmdb/relations", json={"source": "web", "type": "runs_on",
                                                    "target": estate.id("vm-9")})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["source"]["name"], body["name"], body["target"]["name"]) == (
        "web", "runs on", "vm-9")
    assert body["inverse_name"] == "runs"
    relations = manager.get(f"/cmdb/cis/{estate.id('vm-9')}/relations").get_json()
    assert relations["outgoing"] == []
    assert [(r["source"]["name"], r["inverse_name"]) for r in relations["incoming"]] == [
        ("web", "runs")]
    history = manager.get(f"/cmdb/cis/{estate.id('vm-9')}/history").get_json()
    assert (history[-1]["action"], history[-1]["field"], history[-1]["new_value"]) == (
        "relation_added", "~runs_on", f"web (#{estate.id('web')})")


def test_a_relation_exists_once_and_never_from_a_ci_to_itself(world, desk, estate):
    estate.ci("a", "application")
    estate.ci("b", "database")
    manager = world.api(desk.manager)
    body = {"source": "a", "type": "depends_on", "target": "b"}
    assert manager.post("/cmdb/relations", json=body).status_code == 201
    again = manager.post("/cmdb/relations", json=body)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "duplicate_relation"
    # The other direction, or another type, is another relation.
    assert manager.post("/cmdb/relations", json={**body, "type": "connects_to"}
                        ).status_code == 201
    itself = manager.post("/cmdb/relations", json={"source": "a", "type": "depends_on",
                                                   "target": "a"})
    assert itself.status_code == 422
    assert set(itself.get_json()["error"]["fields"]) == {"target"}
    unknown = manager.post("/cmdb/relations", json={"source": "zz", "type": "depends_on",
                                                    "target": 2**31 - 1})
    assert unknown.status_code == 422
    assert set(unknown.get_json()["error"]["fields"]) == {"source", "target"}
    bad_type = manager.post("/cmdb/relations", json={**body, "type": "likes"})
    assert bad_type.status_code == 422 and "type" in bad_type.get_json()["error"]["fields"]


def test_only_editors_relate_and_unrelate(world, desk, estate):
    estate.ci("a", "application")
    estate.ci("b", "database")
    body = {"source": "a", "type": "depends_on", "target": "b"}
    assert world.api(desk.agent).post("/cmdb/relations", json=body).status_code == 403
    assert world.api(desk.employee).post("/cmdb/relations", json=body).status_code == 403
    relation = world.api(desk.admin).post("/cmdb/relations", json=body).get_json()
    path = f"/cmdb/relations/{relation['id']}"
    assert world.api(desk.agent).request("DELETE", path).status_code == 403
    assert world.api(desk.manager).request("DELETE", path).status_code == 204
    assert world.api(desk.manager).request("DELETE", path).status_code == 404
    history = world.api(desk.agent).get(f"/cmdb/cis/{estate.id('a')}/history").get_json()
    assert [h["action"] for h in history] == ["created", "relation_added", "relation_removed"]


def test_relation_types_say_which_end_depends_on_which(world, desk, estate):
    types = {t["key"]: t for t in world.api(desk.agent).get("/cmdb/relation-types").get_json()}
    assert set(types) == {"depends_on", "runs_on", "hosted_on", "connects_to", "part_of"}
    assert types["hosted_on"]["inverse"] == "hosts"
    assert types["runs_on"]["source_depends"] is True
    assert types["part_of"]["source_depends"] is False


# --- impact --------------------------------------------------------------------------


def test_a_failure_impacts_everything_downstream_with_the_services_first(world, desk, payroll):
    body = _impact(world.api(desk.agent), payroll.id("dc-1"))
    depths = {name: item["depth"] for name, item in _by_name(body).items()}
    assert depths == {"esx-1": 1, "db-1": 1, "vm-1": 2, "vm-2": 2, "payroll-db": 2,
                      "payroll app": 3, "mail": 3, "Database hosting": 3,
                      "Payroll": 4, "E-mail": 4}
    assert [(s["ci"]["name"], s["service_type"], s["depth"]) for s in body["services"]] == [
        ("E-mail", "business", 4), ("Payroll", "business", 4),
        ("Database hosting", "technical", 3)]
    assert body["truncated"] is False and body["count"] == 10
    assert body["root"]["name"] == "dc-1"


def test_each_ci_comes_with_a_shortest_path_from_the_root(world, desk, payroll):
    items = _by_name(_impact(world.api(desk.agent), payroll.id("dc-1")))
    path = [p["name"] for p in items["Payroll"]["path"]]
    assert len(path) == 5 and path[0] == "dc-1" and path[-2:] == ["payroll app", "Payroll"]
    assert path in (["dc-1", "esx-1", "vm-1", "payroll app", "Payroll"],
                    ["dc-1", "db-1", "payroll-db", "payroll app", "Payroll"])
    assert items["Payroll"]["relation"] == "part_of"
    assert [p["name"] for p in items["Database hosting"]["path"]] == [
        "dc-1", "db-1", "payroll-db", "Database hosting"]


def test_part_of_points_the_other_way_the_whole_needs_its_parts(world, desk, payroll):
    api = world.api(desk.agent)
    # The business service fails with its application, not the other way round.
    assert "Payroll" in _by_name(_impact(api, payroll.id("payroll app")))
    assert "payroll app" not in _by_name(_impact(api, payroll.id("Payroll")))


def test_upstream_is_what_a_ci_needs(world, desk, payroll):
    body = _impact(world.api(desk.agent), payroll.id("Payroll"), "direction=upstream&depth=10")
    depths = {name: item["depth"] for name, item in _by_name(body).items()}
    assert depths == {"payroll app": 1, "vm-1": 2, "payroll-db": 2, "esx-1": 3, "db-1": 3,
                      "dc-1": 4, "sw-1": 4, "sw-2": 5}
    assert body["services"] == [] and body["open_tickets"] == []


def test_the_depth_limit_stops_the_walk(world, desk, payroll):
    body = _impact(world.api(desk.agent), payroll.id("dc-1"), "depth=2")
    assert set(_by_name(body)) == {"esx-1", "db-1", "vm-1", "vm-2", "payroll-db"}
    assert body["services"] == []


def test_cycles_are_never_followed_twice(world, desk, payroll):
    # sw-1 and sw-2 need each other; the walk from sw-1 reaches sw-2 once and stops.
    body = _impact(world.api(desk.agent), payroll.id("sw-1"), "depth=10")
    names = [item["ci"]["name"] for item in body["items"]]
    assert len(names) == len(set(names))
    assert "sw-1" not in names
    assert names[:2] == ["esx-1", "sw-2"]
    assert {"Payroll", "E-mail"} <= set(names)
    upstream = _impact(world.api(desk.agent), payroll.id("sw-2"), "direction=upstream&depth=10")
    assert [item["ci"]["name"] for item in upstream["items"]] == ["sw-1"]


def test_the_walk_is_capped_and_says_so(app, payroll):
    ci = payroll.cis["dc-1"]
    result = analyse([ci], "downstream", 10, cap=3)
    assert result.truncated is True
    assert [item.depth for item in result.items] == [1, 1, 2][:len(result.items)]
    assert all(i in result.names for item in result.items for i in item.path)
    assert analyse([ci], "downstream", 10).truncated is False


def test_impact_is_one_recursive_query(app, world, desk, payroll):
    sent = []

    def listener(_conn, _cursor, statement, _params, _context, _many):
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with app.app_context():
            _impact(world.api(desk.agent), payroll.id("dc-1"), "depth=10")
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    walks = [s for s in sent if "impact_walk" in s]
    assert len(walks) == 1 and "WITH RECURSIVE" in walks[0].upper()


def test_impact_parameters_are_checked(world, desk, payroll):
    api = world.api(desk.agent)
    ci = payroll.id("dc-1")
    for query, field in (("depth=0", "depth"), ("depth=11", "depth"),
                         ("direction=sideways", "direction"), ("x=1", "x")):
        response = api.get(f"/cmdb/cis/{ci}/impact?{query}")
        assert response.status_code == 400, query
        assert field in response.get_json()["error"]["fields"]
    assert world.api(desk.employee).get(f"/cmdb/cis/{ci}/impact").status_code == 403
