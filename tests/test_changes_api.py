"""Change management through the REST API: types, risk, workflow, approvals, freezes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cmdb_support import Estate

from servicedesk.extensions import db

NEXT_WEEK = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
PLANS = {"implementation_plan": "Apply the patch.", "backout_plan": "Restore the snapshot.",
         "test_plan": "Log in and send a mail."}
LOW = {"users_affected": "none", "tested": "yes", "backout": "easy", "downtime": "no"}
MEDIUM = {"users_affected": "some", "tested": "partly", "backout": "easy", "downtime": "no"}
HIGH = {"users_affected": "many", "tested": "no", "backout": "hard", "downtime": "yes"}


def iso(value: datetime) -> str:
    return value.isoformat()


def window(start=NEXT_WEEK, hours=2) -> dict:
    return {"planned_start": iso(start), "planned_end": iso(start + timedelta(hours=hours))}


@pytest.fixture
def cab(world, desk):
    """CAB (two members and the manager) and the Emergency CAB; the Service Desk group's
    manager is ``boss``."""
    desk.l1.manager_id = desk.manager.id
    db.session.commit()

    class Cab:
        group = world.group("CAB", 2)
        emergency = world.group("Emergency CAB", 2)
        member_a = world.user("agent", "cab-a", groups=["CAB"])
        member_b = world.user("agent", "cab-b", groups=["CAB"])
        emergency_member = world.user("agent", "ecab", groups=["Emergency CAB"])

    return Cab


def raise_change(world, who, **fields):
    body = {"title": "Patch the mail server", **fields}
    response = world.api(who).post("/changes", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def move(world, who, number, to, **fields):
    return world.api(who).post(f"/changes/{number}/transition", json={"to": to, **fields})


def to_authorization(world, who, answers=LOW, **fields):
    change = raise_change(world, who, risk_answers=answers, **PLANS, **window(), **fields)
    assert move(world, who, change["number"], "assessment").status_code == 200
    response = move(world, who, change["number"], "authorization")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def approve(world, who, number, decision="approve", **fields):
    return world.api(who).post(f"/changes/{number}/approvals",
                               json={"decision": decision, **fields})


def snapshot(world, who, number):
    return world.api(who).get(f"/changes/{number}").get_json()


# --- who sees changes ------------------------------------------------------------------


def test_a_requester_gets_404_on_every_change_url(world, desk, cab):
    number = raise_change(world, desk.agent)["number"]
    api = world.api(desk.employee)
    for method, path in [
        ("GET", "/changes"), ("POST", "/changes"), ("GET", f"/changes/{number}"),
        ("PATCH", f"/changes/{number}"), ("POST", f"/changes/{number}/transition"),
        ("GET", f"/changes/{number}/comments"), ("POST", f"/changes/{number}/comments"),
        ("GET", f"/changes/{number}/history"), ("GET", f"/changes/{number}/conflicts"),
        ("GET", f"/changes/{number}/approvals"), ("POST", f"/changes/{number}/approvals"),
        ("POST", f"/changes/{number}/links"),
        ("GET", "/changes/calendar?start=2026-01-01T00:00:00Z&end=2026-02-01T00:00:00Z"),
        ("GET", "/changes/templates"), ("GET", "/changes/freeze-windows"),
        ("GET", "/changes/risk-model"),
    ]:
        body = {"title": "x", "to": "assessment", "version": 1, "body": "hi",
                "decision": "approve", "kind": "problem", "number": "PRB000001"}
        response = api.request(method, path, json=body if method != "GET" else None)
        assert response.status_code == 404, (method, path, response.get_json())


def test_an_agent_raises_a_normal_change_as_a_draft_of_their_group(world, desk, cab):
    change = raise_change(world, desk.agent, description="Security fix", **window())
    assert change["number"] == "CHG000001"
    assert (change["status"], change["change_type"], change["requester"]) == \
        ("draft", "normal", "agent1")
    assert change["group"] == "Service Desk"
    assert change["risk_level"] is None
    assert change["allowed_transitions"] == ["assessment", "cancelled"]
    other_agent = snapshot(world, desk.l3_agent, change["number"])  # all staff see changes
    assert other_agent["number"] == change["number"]
    api, number = world.api(desk.agent), change["number"]
    assert api.patch(f"/changes/{number}", json={"title": "A", "version": 1}).status_code == 200
    stale = api.patch(f"/changes/{number}", json={"title": "B", "version": 1})
    assert stale.status_code == 409
    assert snapshot(world, desk.agent, number)["title"] == "A"


# --- risk -------------------------------------------------------------------------------


def test_the_risk_answers_give_the_level_and_bad_answers_are_refused(world, desk):
    levels = [raise_change(world, desk.agent, risk_answers=answers)["risk_level"]
              for answers in (LOW, MEDIUM, HIGH)]
    assert levels == ["low", "medium", "high"]
    number = "CHG000001"
    for answers in ({"users_affected": "none"}, {**LOW, "tested": "maybe"},
                    {**LOW, "colour": "red"}):
        response = world.api(desk.agent).patch(f"/changes/{number}",
                                               json={"risk_answers": answers, "version": 1})
        assert response.status_code == 422
        assert "risk_answers" in response.get_json()["error"]["fields"]
    assert snapshot(world, desk.agent, number)["risk_answers"] == LOW


def test_the_risk_model_is_data_that_only_admins_change(world, desk):
    model = world.api(desk.agent).get("/changes/risk-model").get_json()
    assert model["thresholds"] == {"medium": 3, "high": 7}
    model.pop("version")
    assert world.api(desk.agent).put("/changes/risk-model", json=model).status_code == 403
    bad = {**model, "thresholds": {"medium": 5, "high": 2}}
    response = world.api(desk.admin).put("/changes/risk-model", json=bad)
    assert response.status_code == 422
    assert "thresholds" in response.get_json()["error"]["fields"]
    stricter = {**model, "thresholds": {"medium": 1, "high": 2}}
    saved = world.api(desk.admin).put("/changes/risk-model", json=stricter)
    assert saved.status_code == 200, saved.get_json()
    assert raise_change(world, desk.agent, risk_answers=MEDIUM)["risk_level"] == "high"


# --- transitions ------------------------------------------------------------------------


def test_moves_a_type_may_not_take_are_409_naming_the_allowed_ones(world, desk):
    normal = raise_change(world, desk.agent, risk_answers=LOW, **PLANS, **window())
    for target in ("authorization", "scheduled", "implementing", "closed"):
        response = move(world, desk.agent, normal["number"], target)
        assert response.status_code == 409, target
        assert "assessment" in response.get_json()["error"]["fields"]["to"][0]
    assert snapshot(world, desk.agent, normal["number"])["status"] == "draft"
    # Back from assessment to draft, and a draft may be cancelled, after which nothing.
    number = normal["number"]
    assert move(world, desk.agent, number, "assessment").status_code == 200
    assert move(world, desk.agent, number, "draft").status_code == 200
    cancelled = move(world, desk.agent, number, "cancelled", comment="Not needed after all.")
    assert (cancelled.status_code, cancelled.get_json()["allowed_transitions"]) == (200, [])
    assert move(world, desk.agent, number, "draft").status_code == 409
    assert world.api(desk.agent).patch(f"/changes/{number}", json={
        "title": "x", "version": cancelled.get_json()["version"]}).status_code == 409
    comments = world.api(desk.agent).get(f"/changes/{number}/comments").get_json()
    assert [c["body"] for c in comments] == ["Not needed after all."]
    # A standard change is never assessed; an emergency one may be.
    template = world.api(desk.admin).post("/changes/templates", json={"name": "T", **PLANS})
    standard = raise_change(world, desk.agent, change_type="standard",
                            template_id=template.get_json()["id"])
    assert move(world, desk.agent, standard["number"], "assessment").status_code == 409
    emergency = raise_change(world, desk.agent, change_type="emergency")
    assert move(world, desk.agent, emergency["number"], "assessment").status_code == 200


def test_authorization_needs_the_three_plans_the_window_and_the_risk(world, desk, cab):
    response = world.api(desk.agent).post("/changes", json={
        "title": "x", "planned_start": iso(NEXT_WEEK), "planned_end": iso(NEXT_WEEK)})
    assert response.status_code == 422  # a window ends after it starts
    assert "planned_end" in response.get_json()["error"]["fields"]
    number = raise_change(world, desk.agent)["number"]
    move(world, desk.agent, number, "assessment")
    response = move(world, desk.agent, number, "authorization")
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {
        "implementation_plan", "backout_plan", "test_plan", "planned_start", "planned_end"}
    world.api(desk.agent).patch(f"/changes/{number}", json={**PLANS, **window(), "version": 2})
    response = move(world, desk.agent, number, "authorization")
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["risk_answers"]
    assert snapshot(world, desk.agent, number)["status"] == "assessment"


def test_in_authorization_the_plan_is_fixed_and_only_the_approval_moves_on(world, desk, cab):
    change = to_authorization(world, desk.agent)
    for who in (desk.agent, desk.admin):
        assert move(world, who, change["number"], "scheduled").status_code == 403
    assert change["allowed_transitions"] == ["cancelled"]
    response = world.api(desk.agent).patch(f"/changes/{change['number']}", json={
        "backout_plan": "None.", "version": change["version"]})
    assert response.status_code == 409
    assert "backout_plan" in response.get_json()["error"]["fields"]
    ok = world.api(desk.agent).patch(f"/changes/{change['number']}", json={
        "description": "Now with details.", "version": change["version"]})
    assert ok.status_code == 200


def test_an_approved_change_is_implemented_reviewed_and_closed(world, desk, cab):
    number = to_authorization(world, desk.agent)["number"]
    assert approve(world, desk.manager, number).get_json()["status"] == "scheduled"
    started = move(world, desk.agent, number, "implementing").get_json()
    assert started["actual_start"] is not None
    too_early = move(world, desk.agent, number, "review",
                     actual_end=iso(NEXT_WEEK - timedelta(days=30)))
    assert too_early.status_code == 422 and "actual_end" in too_early.get_json()["error"]["fields"]
    reviewed = move(world, desk.agent, number, "review").get_json()
    assert reviewed["actual_end"] is not None
    response = move(world, desk.agent, number, "closed")
    assert response.status_code == 422
    assert "review_outcome" in response.get_json()["error"]["fields"]
    closed = move(world, desk.agent, number, "closed", review_outcome="backed_out",
                  review_notes="Rolled back after errors.").get_json()
    assert (closed["status"], closed["review_outcome"], closed["is_open"]) == \
        ("closed", "backed_out", False)
    actions = [(e["action"], e["new_value"]) for e in
               world.api(desk.agent).get(f"/changes/{number}/history").get_json()]
    assert ("transition", "scheduled") in actions and ("transition", "closed") in actions


def test_low_risk_goes_to_the_group_manager_medium_also_to_the_cab(world, desk, cab):
    number = to_authorization(world, desk.agent, LOW)["number"]
    approvals = world.api(desk.manager).get(f"/changes/{number}/approvals").get_json()
    assert [(a["rule"], [s["user"] for s in a["approvers"]]) for a in approvals] == \
        [("any", ["boss"])]
    assert approve(world, cab.member_a, number).status_code == 403  # not an approver
    # Left pending past its deadline (3 days for low risk), the approval escalates.
    from servicedesk.approvals.escalation import escalate_overdue

    assert escalate_overdue(datetime.now(timezone.utc) + timedelta(days=4)) == 1
    history = world.api(desk.agent).get(f"/changes/{number}/history").get_json()
    assert "approval_escalated" in [e["action"] for e in history]
    # Medium risk: the manager or any CAB member.
    medium = to_authorization(world, desk.agent, MEDIUM)["number"]
    response = approve(world, cab.member_b, medium)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "scheduled"


def test_high_risk_needs_a_quorum_of_two_cab_members(world, desk, cab):
    number = to_authorization(world, desk.agent, HIGH)["number"]
    approvals = world.api(desk.agent).get(f"/changes/{number}/approvals").get_json()
    assert [(a["rule"], a["quorum"], sorted(s["user"] for s in a["approvers"]))
            for a in approvals] == [("quorum", 2, ["cab-a", "cab-b"])]
    assert approve(world, desk.manager, number).status_code == 403  # not on the CAB
    assert approve(world, cab.member_a, number).get_json()["status"] == "authorization"
    assert approve(world, cab.member_a, number).status_code == 409  # once per person
    assert approve(world, cab.member_b, number).get_json()["status"] == "scheduled"
    # A CAB of one cannot reach a quorum of two: the change stays in assessment.
    second = raise_change(world, cab.member_a, risk_answers=HIGH, **PLANS, **window())
    move(world, cab.member_a, second["number"], "assessment")
    refused = move(world, cab.member_a, second["number"], "authorization")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "no_approver"


def test_a_route_with_the_rule_all_needs_every_approver(world, desk, cab):
    model = world.api(desk.admin).get("/changes/risk-model").get_json()
    model.pop("version")
    model["routes"]["medium"] = {"users": ["@group_manager"], "groups": ["CAB"], "rule": "all",
                                 "due_hours": 0}
    refused = world.api(desk.admin).put("/changes/risk-model", json=model)
    assert refused.status_code == 422 and "routes" in refused.get_json()["error"]["fields"]
    model["routes"]["medium"]["due_hours"] = 8
    assert world.api(desk.admin).put("/changes/risk-model", json=model).status_code == 200
    number = to_authorization(world, desk.agent, MEDIUM)["number"]
    asked = world.api(desk.agent).get(f"/changes/{number}/approvals").get_json()[0]
    assert datetime.fromisoformat(asked["due_at"]) - \
        datetime.fromisoformat(asked["requested_at"]) == timedelta(hours=8)
    assert approve(world, desk.manager, number).get_json()["status"] == "authorization"
    assert approve(world, cab.member_b, number).get_json()["status"] == "scheduled"


def test_a_rejection_needs_a_comment_and_cancelling_withdraws_the_ask(world, desk, cab):
    number = to_authorization(world, desk.agent)["number"]
    response = approve(world, desk.manager, number, "reject")
    assert response.status_code == 422
    assert "comment" in response.get_json()["error"]["fields"]
    rejected = approve(world, desk.manager, number, "reject", comment="Not during audit.")
    assert rejected.get_json()["status"] == "rejected"
    history = world.api(desk.agent).get(f"/changes/{number}/history").get_json()
    assert any("Not during audit." in (e["new_value"] or "") for e in history)
    number = to_authorization(world, desk.agent)["number"]  # cancelled while waiting
    assert move(world, desk.agent, number, "cancelled").status_code == 200
    approvals = world.api(desk.agent).get(f"/changes/{number}/approvals").get_json()
    assert [a["status"] for a in approvals] == ["cancelled"]
    assert approve(world, desk.manager, number).status_code == 409
    # A scheduled change may still be cancelled.
    scheduled = to_authorization(world, desk.agent)["number"]
    approve(world, desk.manager, scheduled)
    assert move(world, desk.agent, scheduled, "cancelled").get_json()["status"] == "cancelled"


# --- approvals --------------------------------------------------------------------------


def test_the_agent_who_raised_a_change_cannot_approve_it(world, desk, cab):
    number = to_authorization(world, cab.member_a, MEDIUM)["number"]  # a CAB member
    response = approve(world, cab.member_a, number)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "own_ticket"
    assert snapshot(world, desk.agent, number)["status"] == "authorization"
    # The group's manager raising a low-risk change is not asked to approve it: the
    # route then has nobody, and the change does not go to authorization.
    own = raise_change(world, desk.manager, risk_answers=LOW, **PLANS, **window())
    move(world, desk.manager, own["number"], "assessment")
    refused = move(world, desk.manager, own["number"], "authorization")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "no_approver"


def test_a_route_nobody_can_serve_is_409_and_leaves_the_change_in_assessment(world, desk):
    # No CAB group and no group manager: the medium route has no approver.
    change = raise_change(world, desk.agent, risk_answers=MEDIUM, **PLANS, **window())
    move(world, desk.agent, change["number"], "assessment")
    response = move(world, desk.agent, change["number"], "authorization")
    assert response.status_code == 409
    assert snapshot(world, desk.agent, change["number"])["status"] == "assessment"


# --- types ------------------------------------------------------------------------------


def make_template(world, desk, name="Restart web server"):
    response = world.api(desk.admin).post("/changes/templates", json={
        "name": name, **PLANS, "description": "Rolling restart."})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_standard_change_comes_from_a_template_and_is_scheduled_without_approval(
        world, desk, cab):
    template = make_template(world, desk)
    change = raise_change(world, desk.agent, change_type="standard",
                          template_id=template["id"], **window())
    assert change["implementation_plan"] == PLANS["implementation_plan"]
    assert change["risk_level"] == "low"
    assert change["allowed_transitions"] == ["scheduled", "cancelled"]
    scheduled = move(world, desk.agent, change["number"], "scheduled")
    assert scheduled.get_json()["status"] == "scheduled"
    assert world.api(desk.agent).get(f"/changes/{change['number']}/approvals").get_json() == []


def test_templates_are_managed_by_admins_and_standard_changes_need_one(world, desk):
    response = world.api(desk.agent).post("/changes", json={"title": "x",
                                                            "change_type": "standard"})
    assert response.status_code == 422
    assert "template_id" in response.get_json()["error"]["fields"]
    assert world.api(desk.agent).post("/changes/templates",
                                      json={"name": "x"}).status_code == 403
    template = make_template(world, desk)
    assert world.api(desk.admin).post("/changes/templates",
                                      json={"name": "Restart web server"}).status_code == 422
    stale = world.api(desk.admin).patch(f"/changes/templates/{template['id']}",
                                        json={"active": False, "version": 9})
    assert stale.status_code == 409
    retired = world.api(desk.admin).patch(f"/changes/templates/{template['id']}",
                                          json={"active": False, "version": 1})
    assert retired.get_json()["active"] is False
    response = world.api(desk.agent).post("/changes", json={
        "title": "x", "change_type": "standard", "template_id": template["id"]})
    assert response.status_code == 422


def freeze(world, desk, start=NEXT_WEEK - timedelta(days=1), days=3, **fields):
    response = world.api(desk.admin).post("/changes/freeze-windows", json={
        "name": "Year end", "starts_at": iso(start),
        "ends_at": iso(start + timedelta(days=days)), **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_in_a_freeze_normal_and_standard_changes_are_refused_emergencies_pass(
        world, desk, cab):
    freeze(world, desk)
    change = raise_change(world, desk.agent, risk_answers=LOW, **PLANS, **window())
    move(world, desk.agent, change["number"], "assessment")
    response = move(world, desk.agent, change["number"], "authorization")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "change_freeze"
    assert "Year end" in response.get_json()["error"]["fields"]["planned_start"][0]
    assert snapshot(world, desk.agent, change["number"])["status"] == "assessment"
    template = make_template(world, desk)
    standard = raise_change(world, desk.agent, change_type="standard",
                            template_id=template["id"], **window())
    assert move(world, desk.agent, standard["number"], "scheduled").status_code == 409
    emergency = raise_change(world, desk.agent, change_type="emergency", **PLANS, **window())
    assert emergency["review_required"] is True
    assert move(world, desk.agent, emergency["number"], "authorization").status_code == 200
    approvals = world.api(desk.agent).get(f"/changes/{emergency['number']}/approvals").get_json()
    assert [s["group"] for s in approvals[0]["approvers"]] == ["Emergency CAB"]
    assert approve(world, cab.emergency_member, emergency["number"]).get_json()["status"] == \
        "scheduled"
    move(world, desk.agent, emergency["number"], "implementing")
    move(world, desk.agent, emergency["number"], "review")
    unreviewed = move(world, desk.agent, emergency["number"], "closed",
                      review_outcome="successful")
    assert unreviewed.status_code == 422  # reviewed afterwards: the review is written
    assert "review_notes" in unreviewed.get_json()["error"]["fields"]
    assert move(world, desk.agent, emergency["number"], "closed", review_outcome="successful",
                review_notes="Justified: the CVE was exploited.").status_code == 200


def test_freeze_windows_are_admins_and_only_active_overlapping_ones_refuse(world, desk, cab):
    body = {"name": "x", "starts_at": iso(NEXT_WEEK), "ends_at": iso(NEXT_WEEK)}
    assert world.api(desk.agent).post("/changes/freeze-windows", json=body).status_code == 403
    response = world.api(desk.admin).post("/changes/freeze-windows", json=body)
    assert response.status_code == 422
    assert "ends_at" in response.get_json()["error"]["fields"]
    made = freeze(world, desk)
    stale = world.api(desk.admin).patch(f"/changes/freeze-windows/{made['id']}",
                                        json={"name": "y", "version": 7})
    assert stale.status_code == 409
    assert world.api(desk.admin).request("DELETE", 
        f"/changes/freeze-windows/{made['id']}").status_code == 204
    assert world.api(desk.agent).get("/changes/freeze-windows").get_json() == []


# --- calendar ---------------------------------------------------------------------------
    # A change passes beside a freeze (one starting as it ends) or under an inactive one.
    freeze(world, desk, start=NEXT_WEEK + timedelta(hours=2), days=1)  # starts as it ends
    freeze(world, desk, active=False)
    assert to_authorization(world, desk.agent)["status"] == "authorization"


def test_the_calendar_shows_planned_changes_and_freezes_of_the_period(world, desk, cab):
    planned = to_authorization(world, desk.agent)
    raise_change(world, desk.agent, title="Later", **window(NEXT_WEEK + timedelta(days=60)))
    freeze(world, desk, start=NEXT_WEEK + timedelta(days=2))
    start, end = NEXT_WEEK - timedelta(days=3), NEXT_WEEK + timedelta(days=10)
    body = world.api(desk.agent).get("/changes/calendar", query_string={
        "start": iso(start), "end": iso(end)}).get_json()
    assert [c["number"] for c in body["changes"]] == [planned["number"]]
    assert [w["name"] for w in body["freeze_windows"]] == ["Year end"]
    too_long = world.api(desk.agent).get("/changes/calendar", query_string={
        "start": iso(start), "end": iso(start + timedelta(days=400))})
    assert too_long.status_code == 422


# --- conflicts --------------------------------------------------------------------------


@pytest.fixture
def estate(app):
    e = Estate()
    e.ci("db-1", "server")
    e.ci("payroll-db", "database")
    e.ci("payroll app", "application")
    e.ci("mail", "application")
    e.relate("payroll-db", "runs_on", "db-1")
    e.relate("payroll app", "depends_on", "payroll-db")
    # A chain needing the payroll app: portal (2 hops from payroll-db), gateway (3), kiosk (4).
    for name, needs in (("portal", "payroll app"), ("gateway", "portal"), ("kiosk", "gateway")):
        e.ci(name, "application")
        e.relate(name, "depends_on", needs)
    return e


def test_conflicts_are_overlapping_changes_on_the_same_or_related_cis(world, desk, cab, estate):
    ours = to_authorization(world, desk.agent, affected_cis=["payroll-db"])
    same = to_authorization(world, desk.agent, affected_cis=["payroll-db"],
                            title="Same CI")
    dependent = to_authorization(world, desk.agent, affected_cis=["payroll app"],
                                 title="Needs ours")
    below = to_authorization(world, desk.agent, affected_cis=["db-1"], title="Below ours")
    to_authorization(world, desk.agent, affected_cis=["mail"], title="Unrelated")
    later = raise_change(world, desk.agent, affected_cis=["payroll-db"], risk_answers=LOW,
                         **PLANS, **window(NEXT_WEEK + timedelta(hours=3)))
    move(world, desk.agent, later["number"], "assessment")  # live, but after ours
    raise_change(world, desk.agent, affected_cis=["payroll-db"], **window())  # a draft
    found = world.api(desk.agent).get(f"/changes/{ours['number']}/conflicts").get_json()
    relations = {c["number"]: [ci["relation"] for ci in c["cis"]] for c in found}
    assert relations == {same["number"]: ["same"], dependent["number"]: ["depends_on_ours"],
                         below["number"]: ["ours_depends_on"]}
    # Related within 3 hops only: the gateway conflicts, the kiosk (4 hops) does not.
    gateway = to_authorization(world, desk.agent, affected_cis=["gateway"], title="Gateway")
    to_authorization(world, desk.agent, affected_cis=["kiosk"], title="Kiosk")
    found = world.api(desk.agent).get(f"/changes/{ours['number']}/conflicts").get_json()
    assert gateway["number"] in [c["number"] for c in found]
    assert "Kiosk" not in [c["title"] for c in found]
    number = raise_change(world, desk.agent, title="No CIs")["number"]
    assert world.api(desk.agent).get(f"/changes/{number}/conflicts").get_json() == []


# --- links and comments -----------------------------------------------------------------


def test_changes_link_problems_they_fix_and_incidents_they_caused(world, desk):
    number = raise_change(world, desk.agent)["number"]
    raise_change(world, desk.agent, title="Harmless")
    incident = world.incident(desk.employee, title="Mail down after patch")["number"]
    api = world.api(desk.agent)
    response = api.post(f"/changes/{number}/links", json={"kind": "incident",
                                                          "number": incident})
    assert response.status_code == 200, response.get_json()
    assert [i["number"] for i in response.get_json()["links"]["caused_incidents"]] == [incident]
    problem = api.post("/problems", json={"title": "Mail server flaps"})
    assert problem.status_code == 201, problem.get_json()
    prb = problem.get_json()["number"]
    linked = api.post(f"/changes/{number}/links", json={"kind": "problem", "number": prb})
    assert [p["number"] for p in linked.get_json()["links"]["problems"]] == [prb]
    wrong = api.post(f"/changes/{number}/links", json={"kind": "problem", "number": incident})
    assert wrong.status_code == 422 and "number" in wrong.get_json()["error"]["fields"]
    report = api.get("/changes", query_string={"caused_incidents": "true"}).get_json()
    assert [c["number"] for c in report["items"]] == [number]
    assert api.request("DELETE", f"/changes/{number}/links/incident/{incident}").status_code \
        == 200
    assert api.get("/changes", query_string={"caused_incidents": "true"}).get_json()["items"] \
        == []


def test_comments_and_history(world, desk):
    number = raise_change(world, desk.agent)["number"]
    api = world.api(desk.agent)
    assert api.post(f"/changes/{number}/comments", json={"body": "CAB on Tuesday"}
                    ).status_code == 201
    assert [c["body"] for c in api.get(f"/changes/{number}/comments").get_json()] == \
        ["CAB on Tuesday"]
    assert api.post(f"/changes/{number}/comments", json={"body": " "}).status_code == 422
    assert [e["action"] for e in api.get(f"/changes/{number}/history").get_json()] == \
        ["created", "commented"]
    assert api.get("/changes?sort=title").status_code == 400  # unknown filters
    raise_change(world, desk.agent, title="Second")
    first = api.get("/changes?limit=1").get_json()
    assert [c["title"] for c in first["items"]] == ["Second"]
    rest = api.get(f"/changes?limit=1&cursor={first['next_cursor']}").get_json()
    assert ([c["number"] for c in rest["items"]], rest["next_cursor"]) == ([number], None)


# --- odd input --------------------------------------------------------------------------


def test_no_odd_input_makes_a_change_endpoint_answer_5xx(world, desk, cab):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    number = to_authorization(world, desk.agent)["number"]
    draft = raise_change(world, desk.agent)["number"]
    fields = ["title", "change_type", "template_id", "risk_answers", "planned_start",
              "planned_end", "affected_cis", "implementation_plan", "version", "to",
              "review_outcome", "actual_end", "decision", "comment", "kind", "number",
              "questions", "thresholds", "routes", "name", "starts_at", "ends_at"]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                        st.text(max_size=12), st.sampled_from(
                            ["2026-01-01T00:00:00Z", "2026-01-01", "standard", "closed",
                             "approve", "incident", "INC000001", "\ud800", "\x00"]))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                          max_leaves=5)
    bodies = st.dictionaries(st.sampled_from(fields), values, max_size=5)
    targets = [("POST", "/changes"), ("PATCH", f"/changes/{draft}"),
               ("POST", f"/changes/{draft}/transition"), ("POST", f"/changes/{number}/approvals"),
               ("POST", f"/changes/{draft}/links"), ("PUT", "/changes/risk-model"),
               ("POST", "/changes/freeze-windows"), ("POST", "/changes/templates")]
    admin = world.api(desk.admin)

    @settings(max_examples=30, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.sampled_from(targets), bodies)
    def check(target, body):
        response = admin.request(target[0], target[1], json=body)
        assert response.status_code < 500, (target, body, response.get_data(as_text=True))

    check()
