"""A CI page in a real browser (chromium): the graph of its neighbourhood, what its
failure impacts, and a click through the graph to a service."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from cmdb.seed import seed_classes
from cmdb import service as cmdb
from servicedesk.identity.service import get_user
from servicedesk.incidents import service as incidents

pytestmark = pytest.mark.e2e


def _estate():
    seed_classes()
    ids = {}
    for key, name, cls in [("vm-7", "vm-7", "virtual_machine"),
                           ("app-7", "Payroll app", "application"),
                           ("bs-7", "Payroll", "business_service")]:
        ids[key] = cmdb.create_ci(None, {"name": name, "class": cls, "external_key": key}).id
    cmdb.create_relation(None, {"source": "app-7", "type": "runs_on", "target": "vm-7"})
    cmdb.create_relation(None, {"source": "app-7", "type": "part_of", "target": "bs-7"})
    return ids


def test_an_agent_sees_the_graph_and_what_a_failure_impacts(live, sign_in):
    live.group("Service Desk", 1)
    live.user("agent", "alex", groups=["Service Desk"], display_name="Alex Agent")
    ids = live.run(_estate)
    number = live.run(lambda: incidents.create_incident(
        get_user("alex"), {"title": "Payroll slow", "affected_cis": ["app-7"]},
        channel="web").number)

    alex = sign_in("alex")
    alex.get_by_role("link", name="CMDB").click()
    alex.get_by_role("link", name="vm-7").click()
    expect(alex.locator("h1 .ci-name")).to_have_text("vm-7")
    graph = alex.locator("#graph svg.ci-graph")
    expect(graph).to_be_visible()
    assert graph.bounding_box()["height"] > 100
    expect(graph.locator(f'a[data-ci="{ids["bs-7"]}"]')).to_contain_text("Payroll")
    expect(graph.locator('g.edge[data-type="runs_on"]')).to_have_count(1)
    expect(alex.locator("#impacted-services")).to_contain_text("Payroll")
    expect(alex.locator("#affected-tickets")).to_contain_text(number)

    # Through the picture to the business service; back, and on to the incident.
    graph.locator(f'a[data-ci="{ids["bs-7"]}"]').click()
    expect(alex.locator("h1 .ci-name")).to_have_text("Payroll")
    expect(alex.locator("#impacted-services")).to_contain_text("Payroll")  # itself
    alex.go_back()
    alex.locator("#affected-tickets a", has_text=number).click()
    expect(alex.locator("#cmdb #impacted-services")).to_contain_text("Payroll")
    assert alex.errors == []  # no CSP violation, no script error
