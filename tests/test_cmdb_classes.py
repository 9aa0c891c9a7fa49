"""CI classes: admins define them (parent, typed attributes), plugins add theirs through
the ``servicedesk_ci_classes`` hook, and every refusal names the field."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from cmdb.seed import SEED_CLASSES
from servicedesk.plugins import hookimpl, plugin_manager

from cmdb_support import estate  # noqa: F401  (fixture)

MIGRATION = Path(__file__).resolve().parent.parent / "migrations" / "versions" / "0007_cmdb.py"

RACK = {"key": "rack", "name": "Rack", "parent": "location", "description": "A 19-inch rack",
        "attributes": [{"name": "units", "type": "integer", "label": "Height (U)",
                        "required": True}]}


def test_the_migration_seeds_the_same_classes_as_the_code():
    spec = importlib.util.spec_from_file_location("migration_0007", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    migrated = {key: (name, parent, service_type, description, attributes)
                for key, name, parent, service_type, description, attributes
                in module.SEED_CLASSES}
    seeded = {c["key"]: (c["name"], c["parent"], c["service_type"], c["description"],
                         c["attributes"]) for c in SEED_CLASSES}
    assert migrated == seeded
    assert {"business_service", "technical_service", "application", "database", "server",
            "virtual_machine", "network_device", "location"} == set(seeded)


def test_staff_read_the_classes_with_inherited_attributes(world, desk, estate):
    classes = world.api(desk.agent).get("/cmdb/classes")
    assert classes.status_code == 200
    vm = next(c for c in classes.get_json() if c["key"] == "virtual_machine")
    assert vm["parent"] == "server"
    assert [a["name"] for a in vm["attributes"]] == ["cluster"]
    names = [a["name"] for a in vm["all_attributes"]]
    assert names[0] == "hostname" and names[-1] == "cluster" and "ip_address" in names
    assert next(a for a in vm["all_attributes"] if a["name"] == "ip_address")[
        "inherited_from"] == "server"
    service = world.api(desk.agent).get("/cmdb/classes/business_service").get_json()
    assert service["service_type"] == "business" and service["source"] == "seed"


def test_requesters_may_not_see_the_class_model(world, desk, estate):
    response = world.api(desk.employee).get("/cmdb/classes")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_an_admin_defines_a_subclass_whose_cis_carry_both_sets_of_attributes(world, desk,
                                                                            estate):
    admin = world.api(desk.admin)
    created = admin.post("/cmdb/classes", json=RACK)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert [a["name"] for a in body["all_attributes"]] == ["address", "site_code", "units"]
    assert body["source"] == "admin" and body["version"] == 1
    missing = admin.post("/cmdb/cis", json={"name": "R1", "class": "rack"})
    assert missing.status_code == 422
    assert missing.get_json()["error"]["fields"] == {
        "attributes.units": ["Missing data for required field."]}
    ok = admin.post("/cmdb/cis", json={"name": "R1", "class": "rack",
                                       "attributes": {"units": 42, "site_code": "BER1"}})
    assert ok.status_code == 201, ok.get_json()
    # A rack is a location: it is listed with them.
    locations = admin.get("/cmdb/cis?class=location").get_json()["items"]
    assert [c["name"] for c in locations] == ["R1"]


BAD_DEFINITIONS = [
    ([{"name": "Bad Name", "type": "string", "label": "x"}], "attributes[0].name"),
    ([{"name": "speed", "type": "float", "label": "Speed"}], "attributes[0].type"),
    ([{"name": "tier", "type": "enum", "label": "Tier"}], "attributes[0].choices"),
    ([{"name": "tier", "type": "enum", "label": "Tier", "choices": ["a", "a"]}],
     "attributes[0].choices"),
    ([{"name": "n", "type": "string", "label": "N", "choices": ["a"]}],
     "attributes[0].choices"),
    ([{"name": "address", "type": "string", "label": "Again"}], "attributes[0].name"),
    ([{"name": "a", "type": "string", "label": "A"}, {"name": "a", "type": "string",
                                                      "label": "A"}], "attributes[1].name"),
    ([{"name": "host", "type": "reference", "label": "Host", "ci_class": "nope"}],
     "attributes[0].ci_class"),
    ([{"name": "n", "type": "string", "label": "N", "required": "yes"}],
     "attributes[0].required"),
    ([{"name": "n", "type": "string", "label": "N", "colour": "red"}], "attributes[0].colour"),
    (["not an object"], "attributes[0]"),
]


def test_bad_attribute_definitions_are_refused_naming_the_definition(world, desk, estate):
    admin = world.api(desk.admin)
    for attributes, field in BAD_DEFINITIONS:
        response = admin.post("/cmdb/classes", json={"key": "room", "name": "Room",
                                                     "parent": "location",
                                                     "attributes": attributes})
        assert response.status_code == 422, (attributes, response.get_json())
        assert field in response.get_json()["error"]["fields"], attributes
    assert admin.get("/cmdb/classes/room").status_code == 404


def test_class_keys_and_names_are_unique_and_checked(world, desk, estate):
    admin = world.api(desk.admin)
    assert admin.post("/cmdb/classes", json={"key": "server", "name": "Servers 2"}
                      ).status_code == 409
    clash = admin.post("/cmdb/classes", json={"key": "server2", "name": "server"})
    assert clash.status_code == 409 and "name" in clash.get_json()["error"]["fields"]
    bad = admin.post("/cmdb/classes", json={"key": "Server-2", "name": "S2"})
    assert bad.status_code == 422 and set(bad.get_json()["error"]["fields"]) == {"key"}
    orphan = admin.post("/cmdb/classes", json={"key": "s2", "name": "S2", "parent": "nope"})
    assert orphan.status_code == 422 and set(orphan.get_json()["error"]["fields"]) == {"parent"}


def test_only_admins_change_the_class_model(world, desk, estate):
    for who in (desk.manager, desk.agent):
        response = world.api(who).post("/cmdb/classes", json=RACK)
        assert response.status_code == 403
    assert world.api(desk.admin).get("/cmdb/classes/rack").status_code == 404


def test_changing_a_class_needs_the_version_read_and_keeps_the_key(world, desk, estate):
    admin = world.api(desk.admin)
    rack = admin.post("/cmdb/classes", json=RACK).get_json()
    stale = admin.put("/cmdb/classes/rack", json={"description": "x", "version": 7})
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"
    renamed = admin.put("/cmdb/classes/rack", json={"key": "cabinet", "version": 1})
    assert renamed.status_code == 422 and set(renamed.get_json()["error"]["fields"]) == {"key"}
    changed = admin.put("/cmdb/classes/rack", json={
        "name": "Rack cabinet", "version": rack["version"],
        "attributes": RACK["attributes"] + [{"name": "depth_mm", "type": "integer",
                                             "label": "Depth"}]})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["name"] == "Rack cabinet"
    assert changed.get_json()["version"] == 2
    assert [a["name"] for a in changed.get_json()["attributes"]] == ["units", "depth_mm"]


def test_a_class_cannot_become_its_own_ancestor(world, desk, estate):
    admin = world.api(desk.admin)
    admin.post("/cmdb/classes", json=RACK)
    location = admin.get("/cmdb/classes/location").get_json()
    response = admin.put("/cmdb/classes/location", json={"parent": "rack",
                                                         "version": location["version"]})
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"parent"}


def test_a_parent_may_not_gain_an_attribute_a_subclass_has(world, desk, estate):
    admin = world.api(desk.admin)
    admin.post("/cmdb/classes", json=RACK)
    location = admin.get("/cmdb/classes/location").get_json()
    response = admin.put("/cmdb/classes/location", json={
        "version": location["version"],
        "attributes": location["attributes"] + [{"name": "units", "type": "integer",
                                                 "label": "Units"}]})
    assert response.status_code == 422
    assert "units" in response.get_json()["error"]["fields"]["attributes"][0]


def test_classes_in_use_cannot_be_deleted(world, desk, estate):
    admin = world.api(desk.admin)
    admin.post("/cmdb/classes", json=RACK)
    estate.ci("R1", "rack", units=42)
    assert admin.request("DELETE", "/cmdb/classes/rack").status_code == 409
    assert admin.request("DELETE", "/cmdb/classes/location").status_code == 409  # subclass
    admin.post("/cmdb/classes", json={"key": "printer", "name": "Printer"})
    assert admin.request("DELETE", "/cmdb/classes/printer").status_code == 204
    assert admin.get("/cmdb/classes/printer").status_code == 404


# --- plugin classes ------------------------------------------------------------------


class StoragePlugin:
    def __init__(self):
        self.definitions = [
            {"key": "storage_array", "name": "Storage array", "parent": "network_device",
             "attributes": [{"name": "capacity_tb", "type": "decimal",
                             "label": "Capacity (TB)", "required": True}]},
            {"key": "san_volume", "name": "SAN volume", "parent": "storage_array",
             "attributes": [{"name": "lun", "type": "integer", "label": "LUN"}]},
            {"key": "server", "name": "Hijacked server"},           # an existing key
            {"key": "Broken Key", "name": "Broken"},                # invalid
        ]

    @hookimpl
    def servicedesk_ci_classes(self):
        return self.definitions


@pytest.fixture
def storage_plugin(app):
    plugin = StoragePlugin()
    pm = plugin_manager()
    pm.register(plugin, name="test-storage")
    yield plugin
    pm.unregister(name="test-storage")


def test_plugins_define_classes_that_cis_can_use(world, desk, estate, storage_plugin, caplog):
    admin = world.api(desk.admin)
    with caplog.at_level(logging.WARNING, logger="cmdb.classes"):
        synced = admin.post("/cmdb/classes/sync")
    assert synced.status_code == 200 and synced.get_json() == {"created": 2, "updated": 0}
    assert "Broken Key" in caplog.text and "'server'" in caplog.text
    volume = admin.get("/cmdb/classes/san_volume").get_json()
    assert volume["source"] == "plugin" and volume["parent"] == "storage_array"
    assert [a["name"] for a in volume["all_attributes"]][-2:] == ["capacity_tb", "lun"]
    assert admin.get("/cmdb/classes/server").get_json()["name"] == "Server"
    ci = admin.post("/cmdb/cis", json={"name": "vol-1", "class": "san_volume",
                                       "attributes": {"capacity_tb": "1.50", "lun": 3}})
    assert ci.status_code == 201, ci.get_json()
    assert ci.get_json()["attributes"] == {"capacity_tb": "1.5", "lun": 3}
    # Admins cannot edit what the plugin would put back.
    edit = admin.put("/cmdb/classes/san_volume", json={"name": "Volume", "version": 1})
    assert edit.status_code == 409 and edit.get_json()["error"]["code"] == "plugin_class"
    # A new version of the plugin changes its class at the next sync; nothing else moves.
    storage_plugin.definitions[1]["name"] = "SAN LUN"
    assert admin.post("/cmdb/classes/sync").get_json() == {"created": 0, "updated": 1}
    assert admin.post("/cmdb/classes/sync").get_json() == {"created": 0, "updated": 0}
    assert admin.get("/cmdb/classes/san_volume").get_json()["name"] == "SAN LUN"


def test_plugin_classes_are_there_at_the_first_change_without_a_sync(world, desk, estate,
                                                                     storage_plugin):
    manager = world.api(desk.manager)
    created = manager.post("/cmdb/cis", json={"name": "array-1", "class": "storage_array",
                                              "attributes": {"capacity_tb": 200}})
    assert created.status_code == 201, created.get_json()


def test_a_plugin_whose_hook_raises_breaks_no_cmdb_change(world, desk, estate, app):
    class Broken:
        @hookimpl
        def servicedesk_ci_classes(self):
            raise RuntimeError("plugin bug")

    pm = plugin_manager()
    pm.register(Broken(), name="test-broken-classes")
    try:
        response = world.api(desk.admin).post("/cmdb/cis", json={"name": "x", "class": "server"})
        assert response.status_code == 201
        assert app.extensions["servicedesk"]["failures"]["test-broken-classes"] >= 1
    finally:
        pm.unregister(name="test-broken-classes")
