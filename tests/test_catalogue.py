"""The service catalogue: services, offerings, forms as data (API and pages)."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import SAWarning

from servicedesk.extensions import db

LAPTOP_FORM = {"fields": [
    {"key": "model", "label": "Model", "type": "choice", "required": True,
     "options": ["13-inch", "15-inch"], "help": "Pick a size"},
    {"key": "reason", "label": "Why", "type": "textarea", "required": True},
    {"key": "needed_by", "label": "Needed by", "type": "date"},
    {"key": "monitors", "label": "Monitors", "type": "number"},
    {"key": "docking", "label": "Docking station", "type": "boolean"},
    {"key": "extras", "label": "Extras", "type": "multichoice", "options": ["mouse", "bag"]},
    {"key": "note", "label": "Note", "type": "text"},
]}


def make_service(world, admin, **fields):
    body = {"name": "Workplace", "kind": "business", "description": "Desks and laptops",
            **fields}
    response = world.api(admin).post("/catalogue/services", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_offering(world, admin, service_id, **fields):
    body = {"service_id": service_id, "name": "New laptop", "form": LAPTOP_FORM, **fields}
    response = world.api(admin).post("/catalogue/offerings", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_admin_builds_the_catalogue_and_employees_read_the_active_part(world, desk):
    service = make_service(world, desk.admin, owner_group="Service Desk")
    assert service["owner_group"] == "Service Desk" and service["kind"] == "business"
    offering = make_offering(world, desk.admin, service["id"], fulfilment_group="Service Desk")
    assert offering["form"]["fields"][0]["options"] == ["13-inch", "15-inch"]
    assert offering["form"]["fields"][2]["required"] is False  # the default, filled in
    hidden = make_offering(world, desk.admin, service["id"], name="Old phone", active=False)

    employee = world.api(desk.employee)
    names = [o["name"] for o in employee.get("/catalogue/offerings").get_json()]
    assert names == ["New laptop"]
    assert employee.get(f"/catalogue/offerings/{hidden['id']}").status_code == 404
    assert employee.get(f"/catalogue/services/{service['id']}").get_json()["name"] == "Workplace"
    every = world.api(desk.admin).get("/catalogue/offerings?include_inactive=true").get_json()
    assert {o["name"] for o in every} == {"New laptop", "Old phone"}


def test_only_admins_change_the_catalogue(world, desk):
    service = make_service(world, desk.admin)
    for user in (desk.employee, desk.agent):
        api = world.api(user)
        assert api.post("/catalogue/services", json={"name": "Mine"}).status_code == 403
        assert api.patch(f"/catalogue/services/{service['id']}",
                         json={"name": "Mine", "version": 1}).status_code == 403
        assert api.post("/catalogue/offerings",
                        json={"service_id": service["id"], "name": "X"}).status_code == 403
    assert world.api(desk.admin).get("/catalogue/services").get_json()[0]["name"] == "Workplace"


BAD_DEFINITIONS = [
    ([{"key": "a", "label": "A", "type": "colour"}], "form.fields.0.type"),
    ([{"key": "a", "label": "A", "type": "text"}, {"key": "a", "label": "B", "type": "text"}],
     "form.fields.1.key"),
    ([{"key": "a", "label": "A", "type": "text"}, {"key": "b", "label": "B", "type": "text"},
      {"key": "c", "label": "C", "type": "choice"}], "form.fields.2.options"),
    ([{"key": "a", "label": "A", "type": "text", "options": ["x"]}], "form.fields.0.options"),
    ([{"key": "Bad Key", "label": "A", "type": "text"}], "form.fields.0.key"),
    ([{"key": "a", "label": "", "type": "text"}], "form.fields.0.label"),
    ([{"key": "a", "label": "A", "type": "text", "colour": "red"}], "form.fields.0.colour"),
    ([{"key": "a", "label": "A", "type": ["choice"], "options": ["x"]}], "form.fields.0.type"),
    ([{"key": "a", "label": "A", "type": "choice", "options": "x"}], "form.fields.0.options"),
    ([{"key": "a", "label": "A", "type": "choice", "options": ["x", "x"]}],
     "form.fields.0.options"),
    (["text"], "form.fields.0"),
    ("not a list", "form.fields"),
]


def test_a_bad_offering_is_refused_naming_the_place(world, desk):
    service = make_service(world, desk.admin)
    api = world.api(desk.admin)
    for fields, where in BAD_DEFINITIONS:
        response = api.post("/catalogue/offerings", json={
            "service_id": service["id"], "name": "Broken", "form": {"fields": fields}})
        assert response.status_code == 422, (fields, response.get_json())
        assert where in response.get_json()["error"]["fields"], (fields, where)
    for body, where in [({"approval_rule": "group"}, "approval_group"),
                        ({"fulfilment_group": "Nobody"}, "fulfilment_group"),
                        ({"approval_rule": "boss"}, "approval_rule"),
                        ({"service_id": 424242}, "service_id")]:
        response = api.post("/catalogue/offerings", json={
            "service_id": service["id"], "name": "VPN", **body})
        assert response.status_code == 422 and where in response.get_json()["error"]["fields"]
    assert api.get("/catalogue/offerings?include_inactive=true").get_json() == []


def test_editing_a_service_needs_the_current_version(world, desk):
    service = make_service(world, desk.admin)
    api = world.api(desk.admin)
    path = f"/catalogue/services/{service['id']}"
    changed = api.patch(path, json={"description": "Everything at your desk", "version": 1})
    assert changed.status_code == 200 and changed.get_json()["version"] == 2
    stale = api.patch(path, json={"description": "Lost update", "version": 1})
    assert stale.status_code == 409
    assert api.get(path).get_json()["description"] == "Everything at your desk"


def test_a_service_lists_its_supporting_cis(world, desk):
    from cmdb import service as cmdb
    from cmdb.seed import seed_classes

    seed_classes()
    ci = {"id": cmdb.create_ci(None, {"name": "laptop-pool", "class": "server"}).id}
    service = make_service(world, desk.admin, cis=[ci["id"]])
    assert service["cis"] == [{"id": ci["id"], "name": "laptop-pool"}]
    employee_view = world.api(desk.employee).get(f"/catalogue/services/{service['id']}")
    assert employee_view.get_json()["cis"] == []  # the CMDB is for IT staff
    response = world.api(desk.admin).post("/catalogue/services",
                                          json={"name": "Broken", "cis": [999999]})
    assert response.status_code == 422 and "cis" in response.get_json()["error"]["fields"]


TABLES = ("catalogue_services", "catalogue_offerings", "service_cis", "service_requests")


def test_the_migrated_schema_matches_the_models(session_app):
    with session_app.app_context(), db.engine.connect() as connection, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # the tickets' expression index
        warnings.simplefilter("ignore", UserWarning)
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert [entry for entry in diff if any(t in repr(entry) for t in TABLES)] == []


def test_the_admin_page_edits_an_offering_form_as_json(app, world, desk):
    from test_web_pages import PASSWORD, problem_of, signed_in

    service = make_service(world, desk.admin)
    offering = make_offering(world, desk.admin, service["id"])
    admin = world.user("admin", "catadmin", password=PASSWORD)
    browser = signed_in(app, admin)
    action = f"/catalogue/admin/offerings/{offering['id']}"
    base = {"service_id": str(service["id"]), "name": "New laptop", "approval_rule": "none",
            "version": "1", "active": ["false", "true"]}
    bad = browser.submit("/catalogue/admin", action, {
        **base, "form": '{"fields": [{"key": "a", "label": "A", "type": "colour"}]}'})
    assert bad.status_code == 422 and "form.fields.0.type" in problem_of(bad)
    good = browser.submit("/catalogue/admin", action, {
        **base, "form": '{"fields": [{"key": "a", "label": "A", "type": "text"}]}'})
    assert good.status_code == 302
    shown = world.api(desk.admin).get(f"/catalogue/offerings/{offering['id']}").get_json()
    assert shown["form"]["fields"][0]["key"] == "a" and shown["version"] == 2
    added = browser.submit("/catalogue/admin", "/catalogue/admin/services", {
        "name": "Printing", "kind": "technical", "owner_group": "Service Desk",
        "sla_policy_id": "", "cis": "", "description": "", "active": ["false", "true"]})
    assert added.status_code == 302
    printing = [s for s in world.api(desk.admin).get("/catalogue/services").get_json()
                if s["name"] == "Printing"]
    assert printing[0]["kind"] == "technical" and printing[0]["owner_group"] == "Service Desk"
    unknown_ci = browser.submit("/catalogue/admin", "/catalogue/admin/services", {
        "name": "Scanning", "cis": "no-such-ci"})
    assert unknown_ci.status_code == 422 and "cis" in problem_of(unknown_ci)
    employee = world.user("requester", "catemp", password=PASSWORD)
    assert signed_in(app, employee).get("/catalogue/admin").status_code == 404


def test_answers_are_checked_against_the_form_and_stored_as_json_values(session_app):
    from servicedesk.catalogue.formdef import check_definition, validate_answers
    from servicedesk.errors import ValidationError

    form = check_definition({"fields": LAPTOP_FORM["fields"] + [
        {"key": "policy", "label": "I accept", "type": "boolean", "required": True}]})
    with session_app.test_request_context():
        stored = validate_answers(form, {
            "model": "13-inch", "reason": "  Broken  ", "needed_by": "2026-12-01",
            "monitors": "2", "extras": [], "note": "", "policy": True})
        assert stored == {"model": "13-inch", "reason": "Broken", "needed_by": "2026-12-01",
                          "monitors": 2, "policy": True}
        try:
            validate_answers(form, {"model": "13-inch", "reason": "x", "policy": False,
                                    "monitors": "NaN", "nickname": "x"})
        except ValidationError as exc:
            assert set(exc.fields) == {"answers.policy", "answers.monitors", "answers.nickname"}
        else:
            raise AssertionError("accepted")
