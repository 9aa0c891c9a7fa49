"""The CMDB pages (browse, a CI with its graph and impact, the class model) and the
CMDB card of the console's incident page, through Flask's test client, signed in
through the real login form."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import unescape

import pytest
from flask import g
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from cmdb_support import estate, payroll  # noqa: F401  (fixtures)
from servicedesk.identity import service as identity

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SVG = "{http://www.w3.org/2000/svg}"


class PageClient(FlaskClient):
    def open(self, *args, **kwargs):
        for name in list(g):  # a fresh g per request, as in production
            g.pop(name)
        return super().open(*args, **kwargs)

    def submit(self, page: str, action: str, data: dict):
        token = _TOKEN.search(self.get(page).get_data(as_text=True)).group(1)
        return self.post(action, data={"csrf_token": token, **data})


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def signed_in(app, user) -> PageClient:
    identity.set_password(None, user, PASSWORD)
    client = PageClient(app, app.response_class, use_cookies=True)
    response = client.submit("/login", "/login", {"username": user.username,
                                                  "password": PASSWORD})
    assert response.status_code == 302
    return client


def text_of(response) -> str:
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def section(response, element_id: str) -> str:
    html = response.get_data(as_text=True)
    match = re.search(rf'<section class="card" id="{element_id}">.*?</section>', html, re.S)
    assert match, f"no #{element_id}"
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", match.group(0)))).strip()


def test_a_ci_page_shows_its_graph_services_and_open_tickets(app, world, desk, payroll):
    number = world.api(desk.agent).post("/incidents", json={
        "title": "Payroll slow", "affected_cis": ["payroll app"]}).get_json()["number"]
    client = signed_in(app, desk.agent)
    response = client.get(f"/cmdb/cis/{payroll.id('vm-1')}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    svg = ET.fromstring(re.search(r"<svg .*?</svg>", html, re.S).group(0))
    nodes = {a.get("data-ci"): a for a in svg.iter(f"{SVG}a")}
    # Two hops both ways: what needs vm-1 up to the business service, what it needs.
    assert {payroll.id(n) for n in ("vm-1", "payroll app", "Payroll", "esx-1", "dc-1",
                                    "sw-1")} <= {int(i) for i in nodes}
    assert nodes[str(payroll.id("Payroll"))].get("href") == f"/cmdb/cis/{payroll.id('Payroll')}"
    labels = {t.text for t in svg.iter(f"{SVG}text")}
    assert {"runs on", "hosted on", "part of"} <= labels
    assert "Payroll business service" in section(response, "impact")
    assert number in section(response, "impact")        # affected through the application
    assert number not in section(response, "open-tickets")  # named on the app, not the VM
    assert number in section(client.get(f"/cmdb/cis/{payroll.id('payroll app')}"),
                             "open-tickets")
    assert "esx-1" in section(response, "relations")


def test_names_are_escaped_in_the_page_and_the_picture(app, world, desk, estate):
    estate.ci('<script>alert("x")</script>', "server", key="evil")
    estate.ci("web & <b>", "application", key="web")
    estate.relate("web & <b>", "runs_on", '<script>alert("x")</script>')
    client = signed_in(app, desk.agent)
    html = client.get(f"/cmdb/cis/{estate.id('web & <b>')}").get_data(as_text=True)
    assert "<script>alert" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html
    svg = world.api(desk.agent).get(f"/cmdb/cis/{estate.id('web & <b>')}/graph.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    tree = ET.fromstring(svg.get_data(as_text=True))
    assert not list(tree.iter(f"{SVG}script"))
    assert any(t.text and "web & <b>" in t.text for t in tree.iter(f"{SVG}text"))
    assert not any(name.startswith("on") for el in tree.iter() for name in el.attrib)


def test_browse_filters_by_class_status_and_name(app, desk, payroll):
    client = signed_in(app, desk.agent)
    page = client.get("/cmdb?class=server&q=vm")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-ci="(\d+)">', page.get_data(as_text=True))
    assert [int(r) for r in rows] == [payroll.id("vm-1"), payroll.id("vm-2")]
    lone = payroll.ci("spare", "server")  # no relations: a picture of one
    page = client.get(f"/cmdb/cis/{lone.id}")
    assert page.status_code == 200 and "Nothing depends on it." in text_of(page)
    assert len(re.findall(r"<rect ", page.get_data(as_text=True))) == 1
    bad = client.get("/cmdb?status=gone")
    assert bad.status_code == 400 and "status" in text_of(bad)
    classes = client.get("/cmdb/classes")
    assert "Virtual machine" in text_of(classes) and "Inherited from" in text_of(classes)


def test_the_cmdb_pages_do_not_exist_for_requesters(app, desk, payroll):
    client = signed_in(app, desk.employee)
    for path in ("/cmdb", f"/cmdb/cis/{payroll.id('vm-1')}", "/cmdb/classes"):
        assert client.get(path).status_code == 404, path
    anonymous = PageClient(app, app.response_class, use_cookies=True)
    assert anonymous.get("/cmdb").status_code == 302


def test_the_console_shows_an_incidents_cis_and_impacted_services(app, world, desk, payroll):
    number = world.api(desk.agent).post("/incidents", json={
        "title": "Mail down", "affected_cis": ["vm-2"]}).get_json()["number"]
    client = signed_in(app, desk.agent)
    page = f"/console/incidents/{number}"
    card = section(client.get(page), "cmdb")
    assert "vm-2" in card and "E-mail business service" in card
    saved = client.submit(page, f"/console/incidents/{number}/cis",
                          {"affected_cis": f"payroll-db, {payroll.id('mail')}", "version": "1"})
    assert saved.status_code == 302
    card = section(client.get(page), "cmdb")
    assert "payroll-db" in card and "mail" in card and "vm-2" not in card
    assert "Payroll business service" in card and "Database hosting technical service" in card
    refused = client.submit(page, f"/console/incidents/{number}/cis",
                            {"affected_cis": "nope", "version": "2"})
    assert refused.status_code == 422
    assert "Unknown CI 'nope'." in text_of(refused)
