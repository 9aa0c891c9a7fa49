"""Approvals on any ticket: rules, who may decide, escalation, API and the inbox page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from servicedesk.approvals import escalation, service
from servicedesk.approvals.models import Approval
from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.notify.models import Notification
from servicedesk.tickets.models import AuditEntry, Ticket
from servicedesk.types import utcnow


@pytest.fixture
def ticket(world, desk):
    from servicedesk.notify.rules import seed_defaults

    seed_defaults()  # approval_requested is rule-driven (tests start with no rules)
    number = world.incident(desk.employee, title="New laptop")["number"]
    return db.session.scalars(select(Ticket).where(Ticket.number == number)).one()


@pytest.fixture
def handled():
    """Records what the decision handler of incidents (our throwaway kind) is told."""
    calls = []
    before = service.decision_handler("incident")
    service.register_decision_handler(
        "incident", lambda ticket, approval, actor: calls.append(
            (ticket.number, approval.status, actor.username)))
    yield calls
    if before is None:
        service._HANDLERS.pop("incident", None)
    else:
        service.register_decision_handler("incident", before)


def _ask(ticket, actor, **kwargs):
    kwargs.setdefault("label", "Manager approval")
    approval = service.request_approval(ticket, actor, **kwargs)
    db.session.commit()
    return approval


def _events(event):
    return sorted(n.recipient.username for n in db.session.scalars(
        select(Notification).where(Notification.event == event)))


def _actions(ticket):
    return [e.action for e in db.session.scalars(
        select(AuditEntry).where(AuditEntry.ticket_id == ticket.id).order_by(AuditEntry.id))]


# --- requesting --------------------------------------------------------------------------


def test_requesting_an_approval_audits_and_tells_each_approver_and_group_member(
        world, desk, ticket):
    cab = world.group("CAB")
    world.user("agent", "cab1", groups=[cab])
    world.user("agent", "cab2", groups=[cab])
    approval = _ask(ticket, desk.agent, users=["boss"], groups=[cab], rule="all",
                    due_in=timedelta(hours=8))
    assert approval.status == "pending"
    assert [(s.user.username if s.user else s.group.name) for s in approval.approvers] == \
        ["boss", "CAB"]
    assert "approval_requested" in _actions(ticket)
    assert _events("approval_requested") == ["boss", "cab1", "cab2"]


BAD_REQUESTS = [
    ({}, "approvers"),
    ({"users": ["nobody-such"]}, "approvers"),
    ({"users": ["gone"]}, "approvers"),  # inactive
    ({"users": ["emma"]}, "approvers"),  # the requester
    ({"users": ["boss"], "rule": "most"}, "rule"),
    ({"users": ["boss"], "rule": "quorum", "quorum": 2}, "quorum"),
    ({"users": ["boss"], "rule": "quorum"}, "quorum"),
    ({"users": ["boss"], "quorum": 1}, "quorum"),
    ({"users": ["boss"], "label": " "}, "label"),
]


def test_a_bad_approval_request_names_the_field_and_adds_nothing(world, desk, ticket):
    gone = world.user("manager", "gone")
    gone.active = False
    db.session.commit()
    for kwargs, field in BAD_REQUESTS:
        with pytest.raises(ValidationError) as caught:
            service.request_approval(ticket, desk.agent, **{"label": "Manager", **kwargs})
        assert field in caught.value.fields, kwargs
        db.session.rollback()
    assert db.session.scalars(select(Approval)).all() == []


# --- rules -------------------------------------------------------------------------------


def test_rule_any_is_approved_by_the_first_approval_and_the_handler_hears_it(
        world, desk, ticket, handled):
    approval = _ask(ticket, desk.agent, users=["boss", "agent2"])
    decided = service.decide(desk.manager, approval.id, "approve")
    assert decided.status == "approved" and decided.decided_at is not None
    assert handled == [(ticket.number, "approved", "boss")]
    assert "approval_approved" in _actions(ticket)
    assert _events("approval_decided") == ["agent1", "emma"]  # requester, asker
    with pytest.raises(Conflict):  # no longer pending
        service.decide(desk.agent_b, approval.id, "approve")


def test_rule_all_needs_every_slot_and_a_group_slot_is_filled_by_one_member(
        world, desk, ticket, handled):
    cab = world.group("CAB")
    cab1 = world.user("agent", "cab1", groups=[cab])
    cab2 = world.user("agent", "cab2", groups=[cab])
    approval = _ask(ticket, desk.agent, users=["boss"], groups=[cab], rule="all")
    assert service.decide(cab1, approval.id, "approve").status == "pending"
    assert handled == []
    with pytest.raises(Conflict) as caught:  # the CAB slot is filled
        service.decide(cab2, approval.id, "approve")
    assert caught.value.code == "already_decided"
    db.session.rollback()
    assert service.decide(desk.manager, approval.id, "approve").status == "approved"
    assert handled == [(ticket.number, "approved", "boss")]


def test_a_rejection_rejects_rule_all_and_needs_a_comment(desk, ticket, handled):
    approval = _ask(ticket, desk.agent, users=["boss", "agent2"], rule="all")
    with pytest.raises(ValidationError) as caught:
        service.decide(desk.manager, approval.id, "reject", "  ")
    assert "comment" in caught.value.fields
    db.session.rollback()
    assert service.decide(desk.manager, approval.id, "reject", "Too expensive").status == \
        "rejected"
    assert handled == [(ticket.number, "rejected", "boss")]
    assert db.session.get(Approval, approval.id).decisions[0].comment == "Too expensive"


def test_rule_quorum_approves_at_quorum_and_rejects_once_it_cannot_be_reached(
        world, desk, ticket):
    voters = [world.user("agent", f"v{i}") for i in range(4)]
    approval = _ask(ticket, desk.agent, users=voters, rule="quorum", quorum=2)
    assert service.decide(voters[0], approval.id, "reject", "no").status == "pending"
    assert service.decide(voters[1], approval.id, "approve").status == "pending"
    assert service.decide(voters[2], approval.id, "approve").status == "approved"

    other = _ask(ticket, desk.agent, users=voters[:3], rule="quorum", quorum=2)
    assert service.decide(voters[0], other.id, "reject", "no").status == "pending"
    assert service.decide(voters[1], other.id, "reject", "no").status == "rejected"


# --- who may decide ----------------------------------------------------------------------


def test_the_requester_can_never_approve_their_own_ticket(world, desk):
    number = world.incident(desk.manager, title="My own change")["number"]
    own = db.session.scalars(select(Ticket).where(Ticket.number == number)).one()
    approval = _ask(own, desk.agent, groups=[desk.l1])  # boss is in the Service Desk
    with pytest.raises(Forbidden) as caught:
        service.decide(desk.manager, approval.id, "approve")
    assert caught.value.code == "own_ticket"
    db.session.rollback()
    assert service.pending_for(desk.manager) == []
    assert [a.id for a in service.pending_for(desk.agent_b)] == [approval.id]


def test_someone_not_named_cannot_decide_and_nobody_decides_twice(desk, ticket):
    approval = _ask(ticket, desk.agent, users=["boss", "agent2"], rule="all")
    with pytest.raises(Forbidden) as caught:  # sees the ticket, is not named
        service.decide(desk.agent, approval.id, "approve")
    assert caught.value.code == "not_approver"
    db.session.rollback()
    with pytest.raises(NotFound):  # does not even see the ticket
        service.decide(desk.l2_agent, approval.id, "approve")
    db.session.rollback()
    service.decide(desk.manager, approval.id, "approve")
    with pytest.raises(Conflict) as caught:
        service.decide(desk.manager, approval.id, "approve")
    assert caught.value.code == "already_decided"


def test_a_stale_version_is_a_conflict_and_changes_nothing(desk, ticket):
    approval = _ask(ticket, desk.agent, users=["boss", "agent2"], rule="all")
    version = approval.version
    service.decide(desk.manager, approval.id, "approve", version=version)
    with pytest.raises(Conflict) as caught:
        service.decide(desk.agent_b, approval.id, "approve", version=version)
    assert caught.value.code == "stale_version"
    db.session.rollback()
    assert len(db.session.get(Approval, approval.id).decisions) == 1


def test_cancelling_pending_approvals_empties_the_inbox(desk, ticket, handled):
    _ask(ticket, desk.agent, users=["boss"])
    cancelled = service.cancel_pending(ticket, desk.agent, "withdrawn")
    db.session.commit()
    assert [a.status for a in cancelled] == ["cancelled"]
    assert service.pending_for(desk.manager) == []
    assert handled == []


# --- escalation ---------------------------------------------------------------------------


def test_an_overdue_approval_is_escalated_once_to_the_approvers_managers(world, desk, ticket):
    big_boss = world.user("manager", "bigboss")
    desk.manager.manager = big_boss
    desk.l2.manager = desk.admin
    db.session.commit()
    approval = _ask(ticket, desk.agent, users=["boss"], groups=[desk.l2], rule="all",
                    due_in=timedelta(hours=4))
    now = utcnow()
    assert escalation.escalate_overdue(now + timedelta(hours=3)) == 0
    assert escalation.escalate_overdue(now + timedelta(hours=5)) == 1
    assert escalation.escalate_overdue(now + timedelta(hours=6)) == 0
    assert _events("approval_overdue") == ["bigboss", "root"]
    assert _actions(ticket).count("approval_escalated") == 1
    assert db.session.get(Approval, approval.id).escalated_at is not None


# --- API -----------------------------------------------------------------------------------


def test_the_api_inbox_lists_and_decides_and_the_ticket_shows_its_approvals(
        world, desk, ticket, handled):
    approval = _ask(ticket, desk.agent, users=["boss"], groups=[desk.l2], rule="all")
    boss = world.api(desk.manager)
    inbox = boss.get("/approvals")
    assert inbox.status_code == 200
    [item] = inbox.get_json()
    assert (item["id"], item["ticket"]["number"], item["label"], item["can_decide"]) == \
        (approval.id, ticket.number, "Manager approval", True)
    assert world.api(desk.l3_agent).get("/approvals").get_json() == []

    refused = boss.post(f"/approvals/{approval.id}/decision", json={"decision": "reject"})
    assert refused.status_code == 422 and "comment" in refused.get_json()["error"]["fields"]
    bad = boss.post(f"/approvals/{approval.id}/decision", json={"decision": "maybe"})
    assert bad.status_code == 422 and "decision" in bad.get_json()["error"]["fields"]
    stale = boss.post(f"/approvals/{approval.id}/decision",
                      json={"decision": "approve", "version": approval.version + 5})
    assert stale.status_code == 409
    assert world.api(desk.agent).post(f"/approvals/{approval.id}/decision",
                                      json={"decision": "approve"}).status_code == 403
    assert world.api(desk.l3_agent).get(f"/approvals/{approval.id}").status_code == 404

    done = boss.post(f"/approvals/{approval.id}/decision", json={"decision": "approve"})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "pending"
    assert boss.post(f"/approvals/{approval.id}/decision",
                     json={"decision": "approve"}).status_code == 409
    final = world.api(desk.l2_agent).post(f"/approvals/{approval.id}/decision",
                                          json={"decision": "approve", "comment": "ok"})
    assert final.get_json()["status"] == "approved"
    assert handled == [(ticket.number, "approved", "netagent")]
    assert [a["decision"] for a in final.get_json()["approvers"]] == ["approve", "approve"]

    # The requester follows their own ticket's approvals; others do not see them.
    own = world.api(desk.employee).get(f"/tickets/{ticket.number}/approvals")
    assert own.status_code == 200
    assert [(a["status"], [d["user"] for d in a["decisions"]]) for a in own.get_json()] == \
        [("approved", ["boss", "netagent"])]
    assert world.api(desk.other_employee).get(
        f"/tickets/{ticket.number}/approvals").status_code == 404
    assert boss.get("/approvals?status=approved").get_json()[0]["id"] == approval.id
    assert boss.get("/approvals?status=whatever").status_code == 400


# --- pages ---------------------------------------------------------------------------------

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _signed_in(app, user):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": _TOKEN.search(page).group(1),
                                           "username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_the_inbox_page_shows_the_pending_approval_and_decides_it(
        app, world, desk, ticket, handled, monkeypatch):
    from servicedesk.identity import service as identity
    from werkzeug.security import generate_password_hash

    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda p: generate_password_hash(p, "pbkdf2:sha256:1000"))
    approver = world.user("requester", "linemanager", password=PASSWORD)  # not staff
    approval = _ask(ticket, desk.agent, users=[approver])
    browser = _signed_in(app, approver)
    nav_link = 'href="/approvals">'
    # A line manager who is a plain employee finds the inbox in the nav while
    # something waits for them; other employees never see the link.
    assert nav_link in browser.get("/portal").get_data(as_text=True)
    bystander = world.user("requester", "bystander", password=PASSWORD)
    assert nav_link not in _signed_in(app, bystander).get("/portal").get_data(as_text=True)
    page = browser.get("/approvals")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert ticket.number in html and "New laptop" in html and "Manager approval" in html
    token = _TOKEN.search(html).group(1)
    action = f"/approvals/{approval.id}/decision"

    no_csrf = browser.post(action, data={"decision": "approve"})
    assert no_csrf.status_code == 400
    refused = browser.post(action, data={"csrf_token": token, "decision": "reject"})
    assert refused.status_code == 422 and "Say why you reject it." in refused.get_data(as_text=True)
    assert handled == []

    from_panel = browser.post(action, data={"csrf_token": token, "decision": "reject",
                                            "next": "/portal"})  # back to the ticket page
    assert from_panel.status_code == 302 and from_panel.headers["Location"] == "/portal"
    assert handled == []

    done = browser.post(action, data={"csrf_token": token, "decision": "reject",
                                      "comment": "Not in the budget", "next": "//evil.test"})
    assert done.status_code == 302 and done.headers["Location"] == "/approvals"
    after = browser.get("/approvals").get_data(as_text=True)
    assert "Manager approval of %s: rejected." % ticket.number in after
    assert "Nothing is waiting for your approval." in after
    assert handled == [(ticket.number, "rejected", "linemanager")]
    assert nav_link not in browser.get("/portal").get_data(as_text=True)


def test_the_panel_shows_decisions_and_its_form_returns_to_the_ticket_page(
        app, world, desk, ticket):
    from flask import render_template_string
    from flask_login import login_user

    approval = _ask(ticket, desk.agent, users=["boss", "agent2"], rule="all")
    service.decide(desk.agent_b, approval.id, "approve", "Fine by me")
    with app.test_request_context("/console/incidents/" + ticket.number):
        login_user(desk.manager)
        html = render_template_string(
            '{% from "approvals/_panel.html" import approvals_panel %}'
            "{{ approvals_panel(items, next='/somewhere') }}",
            items=[service.to_dict(a, desk.manager) for a in service.approvals_for_ticket(ticket)])
    assert "Manager approval" in html and "Fine by me" in html
    assert f'action="/approvals/{approval.id}/decision"' in html
    assert 'name="next" value="/somewhere"' in html
    with app.test_request_context("/"):
        login_user(desk.agent_b)  # decided already: no form
        html = render_template_string(
            '{% from "approvals/_panel.html" import approvals_panel %}'
            "{{ approvals_panel(items) }}",
            items=[service.to_dict(a, desk.agent_b) for a in service.approvals_for_ticket(ticket)])
    assert "approval-decision" not in html
