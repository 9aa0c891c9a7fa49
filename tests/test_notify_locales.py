"""Every notification the desk sends in English also exists in Persian, Russian and
Hebrew, uses the same template variables, and renders for a user of that language."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from jinja2 import Environment, meta
from sqlalchemy import select

from servicedesk.approvals.service import inbox_url, request_approval
from servicedesk.extensions import db
from servicedesk.notify.render import TEMPLATES, render
from servicedesk.tickets.models import Comment, Ticket

LOCALES = ("fa", "ru", "he")
PARTS = ("subject.txt", "txt", "html")


def english_events() -> list[str]:
    names = {p.name for p in (TEMPLATES / "en").iterdir() if not p.name.startswith("_")}
    return sorted({n.removesuffix(".subject.txt") for n in names if n.endswith(".subject.txt")})


EVENTS = english_events()


@pytest.fixture
def sqlite_only(backend):
    """Rendering templates: the database makes no difference."""
    if backend != "sqlite":
        pytest.skip("the database makes no difference here; run on SQLite only")


def test_the_english_events_are_found():
    assert {"ticket.created", "ticket.commented", "approval_requested",
            "problem.resolved", "sla.breach"} <= set(EVENTS)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_english_event_exists_in_every_part_of_the_language(locale):
    missing = [f"{locale}/{event}.{part}" for event in EVENTS for part in PARTS
               if (TEMPLATES / "en" / f"{event}.{part}").is_file()
               and not (TEMPLATES / locale / f"{event}.{part}").is_file()]
    assert missing == []


def _variables(path: Path) -> set[str]:
    return meta.find_undeclared_variables(Environment().parse(path.read_text("utf-8")))


def _includes(path: Path) -> list[str]:
    found = meta.find_referenced_templates(Environment().parse(path.read_text("utf-8")))
    return [name.split("/", 1)[-1] for name in found if name]


@pytest.mark.parametrize("locale", LOCALES)
def test_a_translation_uses_the_same_variables_and_partials_as_english(locale):
    for event in EVENTS:
        for part in PARTS:
            english = TEMPLATES / "en" / f"{event}.{part}"
            if not english.is_file():
                continue
            localized = TEMPLATES / locale / f"{event}.{part}"
            assert _variables(localized) == _variables(english), localized
            assert sorted(_includes(localized)) == sorted(_includes(english)), localized
            # A translation includes its own language's partials, never English ones.
            text = localized.read_text("utf-8")
            assert '"en/' not in text, localized


def _contexts(world, desk) -> tuple[Ticket, dict[str, dict]]:
    """Each event's context as the code that queues it builds it, on real rows."""
    agent = world.api(desk.agent)
    created = agent.post("/incidents", json={
        "title": "VPN drops every hour", "description": "Since Monday, on the office Wi-Fi.",
        "requester": "emma", "group": "Service Desk", "assignee": "agent1"})
    assert created.status_code == 201, created.get_json()
    number = created.get_json()["number"]
    replied = agent.post(f"/incidents/{number}/comments",
                         json={"body": "Please try the new client.", "public": True})
    assert replied.status_code == 201, replied.get_json()
    problem_made = agent.post("/problems", json={"title": "VPN concentrator memory leak"})
    assert problem_made.status_code == 201, problem_made.get_json()

    ticket = db.session.scalars(select(Ticket).where(Ticket.number == number)).one()
    comment = db.session.scalars(select(Comment).where(Comment.ticket_id == ticket.id)
                                 .order_by(Comment.id.desc())).first()
    problem = db.session.scalars(select(Ticket).where(
        Ticket.number == problem_made.get_json()["number"])).one()
    problem.resolution_notes = "Firmware 9.2 installed."
    ticket.resolution_notes = "Reinstalled the VPN client."
    approval = request_approval(ticket, desk.agent, users=[desk.manager], groups=[desk.l2],
                                label="Budget", due_in=timedelta(days=2))
    due = ticket.created_at + timedelta(hours=4)
    actor = {"actor": desk.agent}
    contexts = {
        # notify.rules.notify_hooks / notify_event
        "ticket.created": actor,
        "ticket.assigned": actor,
        "ticket.commented": {**actor, "comment": comment},
        "ticket.resolved": {**actor, "from_status": "in_progress", "to_status": "resolved"},
        "ticket.closed": {**actor, "from_status": "resolved", "to_status": "closed"},
        "ticket.reopened": {**actor, "from_status": "resolved", "to_status": "in_progress"},
        "ticket.transitioned": {**actor, "from_status": "new", "to_status": "resolved"},
        # approvals.service
        "approval_requested": {**actor, "approval": approval, "url": inbox_url()},
        "approval_decided": {"approval": approval, "actor": desk.manager, "url": inbox_url(),
                             "decision": "reject", "comment": "Not this quarter.",
                             "outcome": "pending"},
        "approval_overdue": {"approval": approval, "actor": None, "url": inbox_url()},
        # problems.known_errors
        "problem.resolved": {"problem": problem, "resolved": False},
        # csat.service
        "ticket.survey": {"url": "https://desk.example/survey/abc", "survey": None},
        # sla.escalation
        "sla.warning": {"metric": "response", "step": None, "due_at": due, "group": None},
        "sla.breach": {"metric": "ola:3", "step": None, "due_at": due, "group": "Network"},
    }
    return ticket, contexts


@pytest.mark.parametrize("locale", LOCALES)
def test_every_event_renders_in_the_recipients_language(sqlite_only, world, desk, locale):
    ticket, contexts = _contexts(world, desk)
    assert set(EVENTS) <= set(contexts), set(EVENTS) - set(contexts)
    reader = world.user("agent", groups=[desk.l1], locale=locale)
    english_reader = world.user("agent", groups=[desk.l1])
    direction = "ltr" if locale == "ru" else "rtl"
    for event in EVENTS:
        context = {**contexts[event], "ticket": ticket, "event": event}
        subject, text, html = render(event, reader, context)
        english = render(event, english_reader, context)
        assert subject and "\r" not in subject and "\n" not in subject, event
        assert ticket.number in text, event
        assert html is not None and ticket.number in html, event
        assert f'lang="{locale}" dir="{direction}"' in html, event
        # Really translated: not the English fallback.
        assert text != english[1], event
        assert "Traceback" not in text and "Undefined" not in text, event
    db.session.rollback()


def test_a_decided_approval_says_the_outcome_in_russian(sqlite_only, world, desk):
    ticket, contexts = _contexts(world, desk)
    reader = world.user("agent", groups=[desk.l1], locale="ru")
    context = {**contexts["approval_decided"], "outcome": "rejected", "ticket": ticket}
    subject, text, html = render("approval_decided", reader, context)
    assert subject.startswith("Отклонено (Budget): VPN drops every hour")
    assert f"заявка {ticket.number} отклонена." in text
    assert "Not this quarter." in text and "Not this quarter." in html
    db.session.rollback()


def test_an_overdue_approval_lists_its_approvers_in_hebrew(sqlite_only, world, desk):
    ticket, contexts = _contexts(world, desk)
    reader = world.user("manager", groups=[desk.l1], locale="he")
    context = {**contexts["approval_overdue"], "ticket": ticket}
    subject, text, html = render("approval_overdue", reader, context)
    assert subject.startswith("חלף המועד לאישור (Budget)")
    assert f"- {desk.manager.name}" in text and "- Network Team (קבוצה)" in text
    assert "<li>Network Team (קבוצה)</li>" in html
    assert ticket.number in text and "/approvals" in text
    db.session.rollback()
