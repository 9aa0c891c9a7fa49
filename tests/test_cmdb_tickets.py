"""Tickets name the CIs they affect: raising an incident on a CI tells the agent which
services are impacted, and a CI knows its open tickets (those the reader may see)."""

from __future__ import annotations

from cmdb_support import estate, payroll  # noqa: F401  (fixtures)
from sd_test_recorder import recorder


def _raise(api, **fields):
    response = api.post("/incidents", json={"title": "Payroll is down", **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_raising_an_incident_on_a_ci_shows_the_impacted_services(world, desk, payroll):
    agent = world.api(desk.agent)
    body = _raise(agent, requester=desk.employee.username,
                  affected_cis=["vm-1", payroll.id("payroll-db")])
    assert [c["name"] for c in body["affected_cis"]] == ["vm-1", "payroll-db"][
        ::1 if payroll.id("vm-1") < payroll.id("payroll-db") else -1]
    assert {c["class"] for c in body["affected_cis"]} == {"virtual_machine", "database"}
    assert [(s["name"], s["service_type"]) for s in body["impacted_services"]] == [
        ("Payroll", "business"), ("Database hosting", "technical")]
    impact = agent.get(f"/incidents/{body['number']}/impact").get_json()
    assert impact["affected_cis"] == body["affected_cis"]
    assert impact["impacted_services"] == body["impacted_services"]
    detail = agent.get(f"/incidents/{body['number']}").get_json()
    assert detail["affected_cis"] == body["affected_cis"]
    history = agent.get(f"/incidents/{body['number']}/history").get_json()
    assert any(h["field"] == "affected_cis" and "vm-1" in h["new_value"] for h in history)


def test_the_list_shows_the_same_affected_cis_as_the_detail(world, desk, payroll):
    agent = world.api(desk.agent)
    with_cis = _raise(agent, affected_cis=["mail", "vm-2", "dc-1"])
    without = _raise(agent)
    items = {i["number"]: i for i in agent.get("/incidents").get_json()["items"]}
    for number in (with_cis["number"], without["number"]):
        detail = agent.get(f"/incidents/{number}").get_json()
        assert items[number]["affected_cis"] == detail["affected_cis"]
        assert list(items[number]) == list(detail)
    assert [c["name"] for c in items[with_cis["number"]]["affected_cis"]] == [
        "dc-1", "vm-2", "mail"]  # by id, as created
    assert items[without["number"]]["affected_cis"] == []


def test_affected_cis_change_is_audited_and_told_to_plugins(world, desk, payroll, app):
    recorder.EVENTS.clear()
    agent = world.api(desk.agent)
    number = _raise(agent, affected_cis=["mail"])["number"]
    changed = agent.patch(f"/incidents/{number}", json={"affected_cis": ["vm-2", "mail"],
                                                        "version": 1})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["impacted_services"][0]["name"] == "E-mail"
    history = agent.get(f"/incidents/{number}/history").get_json()
    entry = history[-1]
    assert entry["field"] == "affected_cis"
    assert entry["old_value"] == f"mail (#{payroll.id('mail')})"
    assert ("updated", number, ["affected_cis"]) in recorder.EVENTS
    assert changed.get_json()["version"] == 2
    stale = agent.patch(f"/incidents/{number}", json={"affected_cis": [], "version": 1})
    assert stale.status_code == 409
    cleared = agent.patch(f"/incidents/{number}", json={"affected_cis": [], "version": 2})
    assert cleared.get_json()["affected_cis"] == [] and cleared.get_json()[
        "impacted_services"] == []
    recorder.EVENTS.clear()


def test_only_staff_name_affected_cis_and_unknown_ones_are_refused(world, desk, payroll):
    employee = world.api(desk.employee)
    refused = employee.post("/incidents", json={"title": "x", "affected_cis": ["mail"]})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["fields"] == {
        "affected_cis": ["Only IT staff link configuration items."]}
    agent = world.api(desk.agent)
    unknown = agent.post("/incidents", json={"title": "x", "affected_cis": ["mail", "nope",
                                                                           2**31 - 1]})
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["fields"] == {"affected_cis": [
        "Unknown CI 'nope'.", f"Unknown CI {2**31 - 1}."]}
    for bad in ([0], [True], [{"id": 1}], "mail", [""]):
        response = agent.post("/incidents", json={"title": "x", "affected_cis": bad})
        assert response.status_code == 422, bad
        assert "affected_cis" in response.get_json()["error"]["fields"]
    assert agent.get("/incidents").get_json()["items"] == []


def test_a_ci_lists_its_open_tickets_and_what_its_failure_affects(world, desk, payroll):
    agent = world.api(desk.agent)
    on_mail = _raise(agent, affected_cis=["mail"], group=desk.l1.name)
    on_vm = _raise(agent, affected_cis=["vm-1"], group=desk.l1.name, impact="high",
                   urgency="high")
    tickets = agent.get(f"/cmdb/cis/{payroll.id('mail')}/tickets").get_json()
    assert [t["number"] for t in tickets] == [on_mail["number"]]
    impact = agent.get(f"/cmdb/cis/{payroll.id('esx-1')}/impact").get_json()
    # Both affected when esx-1 fails; the most urgent first.
    assert [(t["number"], t["ci_ids"]) for t in impact["open_tickets"]] == [
        (on_vm["number"], [payroll.id("vm-1")]), (on_mail["number"], [payroll.id("mail")])]
    # Resolved tickets are not open any more.
    agent.post(f"/incidents/{on_mail['number']}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Restarted."})
    assert agent.get(f"/cmdb/cis/{payroll.id('mail')}/tickets").get_json() == []


def test_open_tickets_on_a_ci_are_only_those_the_reader_may_see(world, desk, payroll):
    _raise(world.api(desk.agent), affected_cis=["mail"], group=desk.l1.name)
    ci = payroll.id("mail")
    assert len(world.api(desk.agent).get(f"/cmdb/cis/{ci}/tickets").get_json()) == 1
    # An agent of another line sees the CI, not the first line's ticket.
    assert world.api(desk.l2_agent).get(f"/cmdb/cis/{ci}/tickets").get_json() == []
    impact = world.api(desk.l2_agent).get(f"/cmdb/cis/{ci}/impact").get_json()
    assert impact["open_tickets"] == []
    assert world.api(desk.employee).get(f"/cmdb/cis/{ci}/tickets").status_code == 403
