"""Configuration items: validated against their class on every write, each refusal
naming the attribute; versioned; every change in the CI's history; listed with filters."""

from __future__ import annotations

import pytest

from cmdb_support import estate  # noqa: F401  (fixture)

PROBE = {"key": "probe", "name": "Probe", "attributes": [
    {"name": "label", "type": "string", "label": "Label"},
    {"name": "count", "type": "integer", "label": "Count"},
    {"name": "price", "type": "decimal", "label": "Price"},
    {"name": "active", "type": "boolean", "label": "Active"},
    {"name": "since", "type": "date", "label": "Since"},
    {"name": "tier", "type": "enum", "label": "Tier", "choices": ["gold", "silver"]},
    {"name": "host", "type": "reference", "label": "Host", "ci_class": "server"},
    {"name": "ip", "type": "ip_address", "label": "IP"},
    {"name": "serial", "type": "string", "label": "Serial", "required": True},
]}


@pytest.fixture
def probe(world, desk, estate):
    response = world.api(desk.admin).post("/cmdb/classes", json=PROBE)
    assert response.status_code == 201, response.get_json()
    estate.ci("srv-1", "server")
    estate.ci("vm-1", "virtual_machine")
    estate.ci("room-1", "location")
    return world.api(desk.manager)


def _create(api, attributes, **fields):
    return api.post("/cmdb/cis", json={"name": "p", "class": "probe",
                                       "attributes": {"serial": "S1", **attributes}, **fields})


def test_a_ci_is_stored_with_its_values_in_canonical_form(probe, estate):
    response = _create(probe, {"label": "x", "count": 3, "price": "12.50", "active": True,
                               "since": "2024-02-29", "tier": "gold", "host": "vm-1",
                               "ip": "2001:0DB8:0:0:0:0:0:0001"},
                       external_key="p-1", status="planned", owner_group="Network Team")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["attributes"] == {"label": "x", "count": 3, "price": "12.5", "active": True,
                                  "since": "2024-02-29", "tier": "gold",
                                  "host": estate.id("vm-1"),  # a VM is a server
                                  "ip": "2001:db8::1", "serial": "S1"}
    assert (body["status"], body["owner_group"], body["external_key"], body["version"]) == (
        "planned", "Network Team", "p-1", 1)
    assert probe.get(f"/cmdb/cis/{body['id']}").get_json() == body


BAD_VALUES = [
    ("ip", "10.0.0.256", "Not a valid IP address."),
    ("count", "3", "Not a valid integer"),
    ("count", 2**60, "Not a valid integer"),
    ("count", True, "Not a valid integer"),
    ("price", "12,5", "Not a valid decimal number."),
    ("price", "NaN", "Not a valid decimal number."),
    ("active", "yes", "Not a valid boolean."),
    ("since", "2023-02-29", "Not a valid date (YYYY-MM-DD)."),
    ("tier", "bronze", "Must be one of: gold, silver."),
    ("label", 5, "Not a valid string."),
    ("host", "no-such-ci", "No configuration item 'no-such-ci'."),
    ("host", "room-1", "Must be a CI of the class Server."),
    ("host", 0, "A CI id or external key."),
    ("colour", "red", "Not an attribute of the class Probe."),
    ("serial", None, "Missing data for required field."),
]


def test_a_bad_value_is_refused_naming_the_attribute(probe):
    for name, value, reason in BAD_VALUES:
        response = _create(probe, {name: value})
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert list(error["fields"]) == [f"attributes.{name}"], (name, value)
        assert error["fields"][f"attributes.{name}"][0].startswith(reason), (name, value)
    assert probe.get("/cmdb/cis?class=probe").get_json()["items"] == []


def test_the_fields_of_a_ci_are_checked_each_by_name(probe):
    response = probe.post("/cmdb/cis", json={"name": " ", "class": "nope",
                                             "owner_group": "Nobody", "attributes": {}})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"name", "class", "owner_group"}
    status = probe.post("/cmdb/cis", json={"name": "x", "class": "server", "status": "gone"})
    assert set(status.get_json()["error"]["fields"]) == {"status"}
    missing = probe.post("/cmdb/cis", json={"attributes": {}})
    assert set(missing.get_json()["error"]["fields"]) == {"name", "class"}


def test_external_keys_are_unique(probe):
    assert _create(probe, {}, external_key="k").status_code == 201
    twice = _create(probe, {}, external_key="k")
    assert twice.status_code == 409
    assert twice.get_json()["error"]["fields"] == {"external_key": ["Already in use."]}


def test_a_change_merges_attributes_and_is_recorded_field_by_field(probe, desk):
    ci = _create(probe, {"count": 1, "tier": "gold"}).get_json()
    response = probe.patch(f"/cmdb/cis/{ci['id']}", json={
        "version": 1, "status": "maintenance", "attributes": {"count": 2, "tier": None,
                                                              "ip": "10.0.0.1"}})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["attributes"] == {"count": 2, "ip": "10.0.0.1", "serial": "S1"}
    assert (body["status"], body["version"]) == ("maintenance", 2)
    history = probe.get(f"/cmdb/cis/{ci['id']}/history").get_json()
    assert [(h["action"], h["field"], h["old_value"], h["new_value"]) for h in history] == [
        ("created", None, None, "p"),
        ("updated", "status", "in_use", "maintenance"),
        ("updated", "attributes.count", "1", "2"),
        ("updated", "attributes.ip", None, "10.0.0.1"),
        ("updated", "attributes.tier", "gold", None),
    ]
    assert {h["actor"] for h in history[1:]} == {desk.manager.username}
    same = probe.patch(f"/cmdb/cis/{ci['id']}", json={"version": 2, "status": "maintenance"})
    assert same.get_json()["version"] == 2  # nothing changed, nothing recorded
    assert len(probe.get(f"/cmdb/cis/{ci['id']}/history").get_json()) == 5


def test_a_stale_or_missing_version_changes_nothing(probe):
    ci = _create(probe, {}).get_json()
    probe.patch(f"/cmdb/cis/{ci['id']}", json={"version": 1, "name": "first"})
    stale = probe.patch(f"/cmdb/cis/{ci['id']}", json={"version": 1, "name": "second"})
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "stale_version"
    assert probe.patch(f"/cmdb/cis/{ci['id']}", json={"name": "third"}).status_code == 422
    assert probe.get(f"/cmdb/cis/{ci['id']}").get_json()["name"] == "first"


def test_a_change_of_class_validates_against_the_new_class(probe, estate):
    ci = _create(probe, {"ip": "10.1.1.1"}).get_json()
    move = probe.patch(f"/cmdb/cis/{ci['id']}", json={"version": 1, "class": "server"})
    assert move.status_code == 422
    assert set(move.get_json()["error"]["fields"]) == {"attributes.serial", "attributes.ip"}
    moved = probe.patch(f"/cmdb/cis/{ci['id']}", json={
        "version": 1, "class": "server", "attributes": {"serial": None, "ip_address": "10.1.1.1",
                                                        "ip": None}})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["attributes"] == {"ip_address": "10.1.1.1"}


# --- listing -------------------------------------------------------------------------


def test_cis_are_listed_by_class_with_subclasses_status_name_and_group(probe, estate, world,
                                                                      desk):
    estate.ci("db-9", "server", status="retired", os="Debian", cpu_cores=8,
              under_warranty=True, ip_address="10.0.0.9", location="room-1")
    api = world.api(desk.agent)

    def names(query):
        response = api.get(f"/cmdb/cis?{query}")
        assert response.status_code == 200, response.get_json()
        return [c["name"] for c in response.get_json()["items"]]

    assert names("class=server") == ["db-9", "srv-1", "vm-1"]
    assert names("class=virtual_machine") == ["vm-1"]
    assert names("class=server&status=in_use") == ["srv-1", "vm-1"]
    assert names("q=DB-") == ["db-9"]
    assert names("q=%25") == []  # a LIKE wildcard is a plain character
    assert names("external_key=srv-1") == ["srv-1"]
    assert names("class=server&attr=cpu_cores:8") == ["db-9"]
    assert names("class=server&attr=under_warranty:true") == ["db-9"]
    assert names("class=server&attr=under_warranty:false") == []
    assert names("class=server&attr=ip_address:10.0.0.9&attr=os:Debian") == ["db-9"]
    assert names("class=server&attr=location:room-1") == ["db-9"]
    assert names("class=server&attr=location:" + str(estate.id("room-1"))) == ["db-9"]


BAD_QUERIES = [
    ("attr=os:Debian", 422, "attr"),                  # attributes need a class
    ("class=server&attr=colour:red", 422, "attr"),     # not an attribute of servers
    ("class=server&attr=cpu_cores:many", 422, "attr"),
    ("class=nope", 422, "class"),
    ("status=gone", 400, "status"),
    ("password_hash=x", 400, "password_hash"),
    ("cursor=nonsense", 422, "cursor"),
    ("limit=0", 400, "limit"),
]


def test_bad_list_queries_are_refused_naming_the_parameter(probe, world, desk):
    api = world.api(desk.agent)
    for query, status, field in BAD_QUERIES:
        response = api.get(f"/cmdb/cis?{query}")
        assert response.status_code == status, (query, response.get_json())
        assert field in response.get_json()["error"]["fields"], query


def test_the_list_pages_by_name_with_a_cursor(probe, estate, world, desk):
    for n in range(5):
        estate.ci(f"node-{n}", "server")
    api = world.api(desk.agent)
    seen, cursor = [], None
    for _page in range(10):
        query = "class=server&q=node&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/cmdb/cis?{query}").get_json()
        seen += [c["name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"node-{n}" for n in range(5)]


# --- who may do what -----------------------------------------------------------------


def test_role_by_endpoint_matrix(probe, estate, world, desk):
    ci_id = estate.id("srv-1")
    expected = {
        #             list detail history create patch
        "employee": (403, 403, 403, 403, 403),
        "agent":    (200, 200, 200, 403, 403),
        "manager":  (200, 200, 200, 201, 200),
        "admin":    (200, 200, 200, 201, 200),
    }
    version = 1
    for who, statuses in expected.items():
        api = world.api(getattr(desk, who))
        got = (
            api.get("/cmdb/cis").status_code,
            api.get(f"/cmdb/cis/{ci_id}").status_code,
            api.get(f"/cmdb/cis/{ci_id}/history").status_code,
            api.post("/cmdb/cis", json={"name": f"by {who}", "class": "server"}).status_code,
            api.patch(f"/cmdb/cis/{ci_id}", json={"version": version,
                                                  "description": who}).status_code,
        )
        if got[4] == 200:
            version += 1
        assert got == statuses, who
    assert world.api(desk.admin).get(f"/cmdb/cis/{ci_id}").get_json()["description"] == "admin"


def test_unknown_and_out_of_range_ids_are_404(probe, world, desk):
    api = world.api(desk.agent)
    for path in ("/cmdb/cis/999999", f"/cmdb/cis/{2**40}", f"/cmdb/cis/{2**40}/impact",
                 f"/cmdb/cis/{2**63}/history", "/cmdb/classes/nope"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"


def test_an_attribute_filter_ignores_other_classes_attributes_of_the_same_name(world, desk,
                                                                             estate):
    admin = world.api(desk.admin)
    for key, kind in (("listener", "integer"), ("endpoint", "string")):
        assert admin.post("/cmdb/classes", json={"key": key, "name": key.title(), "attributes": [
            {"name": "port", "type": kind, "label": "Port"}]}).status_code == 201
    estate.ci("web", "endpoint", port="https")
    estate.ci("ldap", "listener", port=389)
    response = admin.get("/cmdb/cis?class=listener&attr=port:389")
    assert response.status_code == 200, response.get_json()
    assert [c["name"] for c in response.get_json()["items"]] == ["ldap"]
    assert [c["name"] for c in admin.get("/cmdb/cis?class=endpoint&attr=port:https")
            .get_json()["items"]] == ["web"]
