"""Import of CIs and relations (JSON and CSV, API and CLI): idempotent by external key,
all rows or none, every bad row and field named, and a dry run that writes nothing."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from cmdb.models import CIHistory, ConfigurationItem, Relation
from cmdb_support import estate  # noqa: F401  (fixture)
from servicedesk.cli import main
from servicedesk.extensions import db

ESTATE = {
    "cis": [
        # References to a CI further down the same file are fine.
        {"external_key": "srv-1", "name": "srv-1", "class": "server", "owner_group":
         "Network Team", "attributes": {"ip_address": "10.0.0.1", "location": "dc-1",
                                        "cpu_cores": 16}},
        {"external_key": "dc-1", "name": "Berlin DC", "class": "location"},
        {"external_key": "app-1", "name": "Payroll app", "class": "application",
         "status": "planned"},
    ],
    "relations": [
        {"source": "app-1", "type": "runs_on", "target": "srv-1"},
        {"source": "srv-1", "type": "hosted_on", "target": "dc-1"},
    ],
}
CSV = (
    "external_key,name,class,status,attr.ip_address,attr.cpu_cores,attr.under_warranty,"
    "rel.hosted_on\n"
    "dc-1,Berlin DC,location,,,,,\n"
    "srv-1,srv-1,server,in_use,10.0.0.1,16,yes,dc-1\n"
    "srv-2,srv-2,server,maintenance,10.0.0.2,,no,dc-1\n"
)


def _counts():
    return (db.session.scalar(select(func.count()).select_from(ConfigurationItem)),
            db.session.scalar(select(func.count()).select_from(Relation)))


def test_a_json_import_creates_and_then_changes_nothing(world, desk, estate):
    admin = world.api(desk.admin)
    first = admin.post("/cmdb/import", json=ESTATE)
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"dry_run": False,
                                "cis": {"created": 3, "updated": 0, "unchanged": 0},
                                "relations": {"created": 2, "unchanged": 0}}
    server = admin.get("/cmdb/cis?external_key=srv-1").get_json()["items"][0]
    dc = admin.get("/cmdb/cis?external_key=dc-1").get_json()["items"][0]
    assert server["attributes"] == {"ip_address": "10.0.0.1", "location": dc["id"],
                                    "cpu_cores": 16}
    assert server["owner_group"] == "Network Team"
    impact = admin.get(f"/cmdb/cis/{dc['id']}/impact").get_json()
    assert [i["ci"]["name"] for i in impact["items"]] == ["srv-1", "Payroll app"]
    history_rows = db.session.scalar(select(func.count()).select_from(CIHistory))

    again = admin.post("/cmdb/import", json=ESTATE)
    assert again.get_json()["cis"] == {"created": 0, "updated": 0, "unchanged": 3}
    assert again.get_json()["relations"] == {"created": 0, "unchanged": 2}
    assert db.session.scalar(select(func.count()).select_from(CIHistory)) == history_rows
    assert admin.get(f"/cmdb/cis/{server['id']}").get_json()["version"] == 1


def test_a_changed_row_updates_its_ci_and_records_what_changed(world, desk, estate):
    admin = world.api(desk.admin)
    admin.post("/cmdb/import", json=ESTATE)
    changed = json.loads(json.dumps(ESTATE))
    changed["cis"][0]["attributes"]["cpu_cores"] = 32
    changed["cis"][2]["status"] = "in_use"
    report = admin.post("/cmdb/import", json=changed).get_json()
    assert report["cis"] == {"created": 0, "updated": 2, "unchanged": 1}
    server = admin.get("/cmdb/cis?external_key=srv-1").get_json()["items"][0]
    assert server["attributes"]["cpu_cores"] == 32 and server["version"] == 2
    history = admin.get(f"/cmdb/cis/{server['id']}/history").get_json()
    assert (history[-1]["field"], history[-1]["old_value"], history[-1]["new_value"]) == (
        "attributes.cpu_cores", "16", "32")


def test_a_dry_run_reports_and_writes_nothing(world, desk, estate):
    report = world.api(desk.manager).post("/cmdb/import?dry_run=true", json=ESTATE)
    assert report.status_code == 200
    assert report.get_json()["dry_run"] is True
    assert report.get_json()["cis"]["created"] == 3
    assert _counts() == (0, 0)


def test_any_bad_row_stops_the_whole_import_and_each_is_named(world, desk, estate):
    bad = json.loads(json.dumps(ESTATE))
    bad["cis"][0]["attributes"]["ip_address"] = "10.0.0.300"
    bad["cis"].append({"external_key": "dc-1", "name": "again", "class": "location"})
    bad["cis"].append({"name": "no key", "class": "server", "colour": "red"})
    bad["relations"].append({"source": "app-1", "type": "runs_on", "target": "nowhere"})
    bad["relations"].append({"source": "app-1", "type": "likes", "target": "srv-1"})
    response = world.api(desk.admin).post("/cmdb/import", json=bad)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "import_invalid"
    assert error["fields"] == {
        "cis[0].attributes.ip_address": ["Not a valid IP address."],
        "cis[3].external_key": ["Also used by cis[1]."],
        "cis[4].colour": ["Unknown field."],
        "cis[4].external_key": ["Required: text of 1 to 200 characters."],
        "relations[2].target": ["Unknown CI 'nowhere'."],
        "relations[3].type": [
            "One of: depends_on, runs_on, hosted_on, connects_to, part_of."],
    }
    assert "5 rows" in error["message"]
    assert _counts() == (0, 0)


def test_a_csv_import_reads_typed_cells_and_relation_columns(world, desk, estate):
    admin = world.api(desk.admin)
    report = admin.post("/cmdb/import", json={"csv": CSV})
    assert report.status_code == 200, report.get_json()
    assert report.get_json()["cis"]["created"] == 3
    assert report.get_json()["relations"]["created"] == 2
    servers = {c["name"]: c for c in admin.get("/cmdb/cis?class=server").get_json()["items"]}
    assert servers["srv-1"]["attributes"] == {"ip_address": "10.0.0.1", "cpu_cores": 16,
                                              "under_warranty": True}
    assert servers["srv-2"]["attributes"] == {"ip_address": "10.0.0.2",
                                              "under_warranty": False}
    assert servers["srv-2"]["status"] == "maintenance"
    # An empty cell removes the value on the next import.
    again = CSV.replace("10.0.0.1,16,yes", "10.0.0.1,,yes")
    assert admin.post("/cmdb/import", json={"csv": again}).get_json()["cis"] == {
        "created": 0, "updated": 1, "unchanged": 2}
    srv1 = admin.get("/cmdb/cis?external_key=srv-1").get_json()["items"][0]
    assert "cpu_cores" not in srv1["attributes"]


def test_csv_errors_name_the_line_and_column(world, desk, estate):
    admin = world.api(desk.admin)
    bad = CSV.replace("10.0.0.2,,no", "10.0.0.2,many,perhaps").replace(
        "in_use,10.0.0.1,16,yes,dc-1", "in_use,10.0.0.1,16,yes,dc-9")
    response = admin.post("/cmdb/import", json={"csv": bad})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {
        "line 4.attributes.cpu_cores": ["Not a valid integer (at most 9007199254740991 either "
                                        "way)."],
        "line 4.attributes.under_warranty": ["Not a valid boolean."],
        "line 3.rel.hosted_on.target": ["Unknown CI 'dc-9'."],
    }
    header = admin.post("/cmdb/import", json={"csv": "name,colour\nx,red\n"})
    assert header.status_code == 422
    assert header.get_json()["error"]["fields"]["csv"] == [
        "Unknown column 'colour'.", "The column external_key is required."]
    ragged = admin.post("/cmdb/import", json={"csv": "external_key,name\na,b,c\n"})
    assert ragged.get_json()["error"]["fields"] == {"line 2.csv": ["3 cells; the header has 2."]}
    assert _counts() == (0, 0)


def test_only_editors_import(world, desk, estate):
    for who in (desk.agent, desk.employee):
        assert world.api(who).post("/cmdb/import", json=ESTATE).status_code == 403
    assert _counts() == (0, 0)


def test_malformed_import_bodies_are_refused(world, desk, estate):
    admin = world.api(desk.admin)
    for body in ([], {"cis": {}}, {"cis": [], "extra": 1}, {"csv": 5},
                 {"csv": "x", "cis": []}, {"cis": ["row"]}):
        response = admin.post("/cmdb/import", json=body)
        assert 400 <= response.status_code < 500, body
    assert _counts() == (0, 0)


def test_the_cli_imports_a_file_and_reports(app, desk, estate, tmp_path):
    runner = app.test_cli_runner()
    path = tmp_path / "estate.json"
    path.write_text(json.dumps(ESTATE))
    dry = runner.invoke(main, ["cmdb", "import", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run, nothing written" in dry.output and "CIs 3 created" in dry.output
    assert _counts() == (0, 0)
    done = runner.invoke(main, ["cmdb", "import", str(path)])
    assert "CIs 3 created, 0 updated, 0 unchanged; relations 2 created" in done.output
    csv_path = tmp_path / "broken.csv"
    csv_path.write_text("external_key,name,class\nx,x,nope\n")
    failed = runner.invoke(main, ["cmdb", "import", str(csv_path)])
    assert failed.exit_code == 1
    assert "line 2.class: No such class." in failed.output
