"""The server-rendered incident pages (portal and console), through Flask's test client.

Every test runs on SQLite and PostgreSQL (the ``app`` fixture). Users sign in through
the real login form, and every POST carries the CSRF token taken from the page, as a
browser would send it.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from flask import g
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.identity.service import deactivate_user
from servicedesk.incidents import forms
from servicedesk.incidents import service as incidents
from servicedesk.incidents import views
from servicedesk.tickets.admin import create_category
from servicedesk.tickets.models import Comment

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class PageClient(FlaskClient):
    """A browser-like client for one user.

    The ``app`` fixture keeps one application context open for the whole test, so ``g``
    outlives a request, and Flask-Login (the user), Flask-WTF (the CSRF token) and
    Flask-Babel (the locale) cache per-request state in ``g``: start each request with
    an empty ``g``, as the fresh application context of a real request does.
    """

    def open(self, *args, **kwargs):
        for name in list(g):
            g.pop(name)
        return super().open(*args, **kwargs)

    def token(self, page: str) -> str:
        """The CSRF token of the form on ``page`` (GET it and read the hidden input)."""
        response = self.get(page)
        assert response.status_code == 200, (page, response.status_code)
        match = _TOKEN.search(response.get_data(as_text=True))
        assert match, f"no CSRF token on {page}"
        return match.group(1)

    def submit(self, page: str, action: str, data: dict):
        """Post a form found on ``page`` to ``action``, with the page's CSRF token."""
        return self.post(action, data={"csrf_token": self.token(page), **data})


def text_of(response) -> str:
    """The page's visible text, tags stripped, white space collapsed."""
    return text_of_html(response.get_data(as_text=True))


def text_of_html(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def problem_of(response) -> str:
    """The text of the page's alert box (why a form or filter was refused); "" if none."""
    html = response.get_data(as_text=True)
    match = re.search(r'<div class="flash flash-error problem" role="alert".*?</div>', html, re.S)
    return text_of_html(match.group(0)) if match else ""


def row_of(response, number: str) -> str:
    """The text of the table row of incident ``number``; "" if it is not listed."""
    html = response.get_data(as_text=True)
    match = re.search(rf'<tr data-number="{number}">.*?</tr>', html, re.S)
    return text_of_html(match.group(0)) if match else ""


def signed_in(app, user) -> PageClient:
    client = PageClient(app, app.response_class, use_cookies=True)
    response = client.submit("/login", "/login", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, text_of(response)
    return client


def fresh(number: str):
    """The incident as the database has it now (not as this session remembers it)."""
    db.session.rollback()
    db.session.expire_all()
    from servicedesk.incidents.models import Incident

    return db.session.scalars(db.select(Incident).where(Incident.number == number)).one()


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    """Passwords hashed with few rounds: signing in is what is tested, not the KDF's cost."""
    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def people(world):
    class People:
        l1 = world.group("Service Desk", 1)
        l2 = world.group("Network Team", 2)
        l3 = world.group("Engineering", 3)
        agent = world.user("agent", "agent1", groups=[l1], password=PASSWORD,
                           display_name="Alex Agent")
        agent_b = world.user("agent", "agent2", groups=[l1], password=PASSWORD,
                             display_name="Bea Backup")
        l2_agent = world.user("agent", "netagent", groups=[l2], password=PASSWORD,
                              display_name="Nia Network")
        employee = world.user("requester", "emma", password=PASSWORD,
                              display_name="Emma Employee")
        other = world.user("requester", "omid", password=PASSWORD, display_name="Omid Other")

    return People


def raise_incident(user, title="Printer jam", **fields):
    return incidents.create_incident(user, {"title": title, **fields}, channel="web")


def console(number):
    return f"/console/incidents/{number}"


def portal(number):
    return f"/portal/incidents/{number}"


# --- sign-in, sessions, headers ------------------------------------------------------


def test_portal_lists_only_my_incidents_with_owner_and_age(app, people):
    mine = raise_incident(people.employee, "VPN drops every few minutes")
    theirs = raise_incident(people.other, "Omid's secret laptop problem")
    incidents.update_incident(people.agent, mine.number,
                              {"assignee": "agent2", "version": mine.version})

    response = signed_in(app, people.employee).get("/portal")

    assert response.status_code == 200
    row = row_of(response, mine.number)
    assert "VPN drops every few minutes" in row
    assert "Bea Backup" in row  # who owns it: the assignee's display name
    assert "Assigned" in row and "P3" in row
    assert "under a minute" in row  # how long it has been open
    assert theirs.number not in text_of(response) and "secret laptop" not in text_of(response)


def test_portal_owner_is_the_group_until_someone_takes_it(app, people):
    incident = raise_incident(people.employee, "No sound")
    row = row_of(signed_in(app, people.employee).get("/portal"), incident.number)
    assert "Service Desk" in row and "New" in row


def test_open_time_is_humanised(app):
    with app.test_request_context():
        assert forms.humanize_seconds(3 * 3600 + 12 * 60 + 5) == "3 h 12 min"
        assert forms.humanize_seconds(42 * 60) == "42 min"
        assert forms.humanize_seconds(2 * 86400 + 4 * 3600 + 59) == "2 d 4 h"
        assert forms.humanize_seconds(30) == "under a minute"


def test_another_persons_incident_is_404_and_cannot_be_replied_to(app, people):
    theirs = raise_incident(people.other, "Omid's printer")
    client = signed_in(app, people.employee)

    assert client.get(portal(theirs.number)).status_code == 404
    token = client.token("/portal")
    response = client.post(portal(theirs.number) + "/reply",
                           data={"csrf_token": token, "body": "mine now"})
    assert response.status_code == 404
    response = client.post(portal(theirs.number) + "/status",
                           data={"csrf_token": token, "to": "cancelled"})
    assert response.status_code == 404
    assert fresh(theirs.number).status == "new"
    assert db.session.scalar(db.select(db.func.count()).select_from(Comment)) == 0


def test_console_does_not_exist_for_requesters(app, people):
    incident = raise_incident(people.employee)
    client = signed_in(app, people.employee)

    assert client.get("/console").status_code == 404
    assert client.get(console(incident.number)).status_code == 404
    token = client.token("/portal")
    response = client.post(console(incident.number) + "/comment",
                           data={"csrf_token": token, "body": "note", "public": "false"})
    assert response.status_code == 404
    response = client.post(console(incident.number) + "/transition",
                           data={"csrf_token": token, "to": "in_progress"})
    assert response.status_code == 404
    assert fresh(incident.number).status == "new"
    assert db.session.scalar(db.select(db.func.count()).select_from(Comment)) == 0


def test_pages_need_a_signed_in_user(app, people):
    incident = raise_incident(people.employee)
    client = PageClient(app, app.response_class)
    for path in ("/portal", "/portal/new", portal(incident.number), "/console",
                 console(incident.number)):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_post_without_csrf_token_is_refused_and_changes_nothing(app, people):
    incident = raise_incident(people.employee)
    employee = signed_in(app, people.employee)
    agent = signed_in(app, people.agent)

    assert employee.post("/portal/new", data={"title": "Forged"}).status_code == 400
    assert employee.post(portal(incident.number) + "/reply",
                         data={"body": "forged reply"}).status_code == 400
    assert agent.post(console(incident.number) + "/take",
                      data={"version": str(incident.version)}).status_code == 400
    response = agent.post(console(incident.number) + "/transition",
                          data={"to": "cancelled", "csrf_token": "not-a-token"})
    assert response.status_code == 400
    assert "CSRF" in text_of(response)

    current = fresh(incident.number)
    assert (current.status, current.assignee_id, current.version) == ("new", None, 1)
    assert db.session.scalar(db.select(db.func.count()).select_from(Comment)) == 0
    assert "Forged" not in text_of(employee.get("/portal"))


def test_get_never_changes_state(app, people):
    incident = raise_incident(people.employee)
    employee = signed_in(app, people.employee)
    agent = signed_in(app, people.agent)

    for suffix in ("/comment?body=x", "/assign?assignee=agent1", "/take",
                   "/transition?to=cancelled", "/escalate", "/edit?impact=high"):
        assert agent.get(console(incident.number) + suffix).status_code == 405, suffix
    for suffix in ("/reply?body=x", "/status?to=cancelled"):
        assert employee.get(portal(incident.number) + suffix).status_code == 405, suffix
    assert employee.get("/portal/new?title=Sneaky").status_code == 200  # just the form
    assert agent.post("/logout").status_code == 400  # sign-out needs the token too

    current = fresh(incident.number)
    assert (current.status, current.impact, current.assignee_id, current.version) == \
        ("new", "medium", None, 1)
    assert "Sneaky" not in text_of(employee.get("/portal"))


def test_security_headers_and_session_cookie(app, people):
    incident = raise_incident(people.employee)
    client = PageClient(app, app.response_class)
    login_page = client.get("/login")
    response = client.post("/login", data={"csrf_token": _TOKEN.search(
        login_page.get_data(as_text=True)).group(1), "username": "emma", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "servicedesk_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie

    page = client.get(portal(incident.number))
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"  # personal data: not cached


def test_login_throttling_answers_unknown_and_known_users_alike(app, people):
    app.config["SERVICEDESK_LOGIN_MAX_PER_USER"] = 3

    def attempt(client, username, password):
        return client.submit("/login", "/login", {"username": username, "password": password})

    known, unknown = PageClient(app, app.response_class), PageClient(app, app.response_class)
    for _ in range(3):
        assert attempt(known, "emma", "wrong password").status_code == 401
        assert attempt(unknown, "nobody-here", "wrong password").status_code == 401
    blocked_known = attempt(known, "emma", PASSWORD)  # even the right password now
    blocked_unknown = attempt(unknown, "nobody-here", PASSWORD)

    assert blocked_known.status_code == blocked_unknown.status_code == 429
    assert "Too many failed sign-in attempts" in text_of(blocked_known)
    assert text_of(blocked_known) == text_of(blocked_unknown)
    assert known.get("/portal").status_code == 302  # not signed in


def test_deactivated_users_session_stops_working(app, people):
    client = signed_in(app, people.employee)
    assert client.get("/portal").status_code == 200

    deactivate_user(None, people.employee)

    response = client.get("/portal")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/portal/new").status_code == 302


# --- the portal ----------------------------------------------------------------------


def test_employee_raises_an_incident_with_the_form(app, people):
    hardware = create_category(None, "Hardware")
    printer = create_category(None, "Printer", hardware.id)
    client = signed_in(app, people.employee)

    response = client.submit("/portal/new", "/portal/new", {
        "title": "  Printer prints blank pages ", "description": "Floor 3",
        "impact": "low", "urgency": "high",
        "category_id": str(hardware.id), "subcategory_id": str(printer.id),
    })

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/portal/incidents/INC000001")
    page = text_of(client.get("/portal/incidents/INC000001"))
    assert "Your incident INC000001 has been raised" in page
    assert "Printer prints blank pages" in page
    created = fresh("INC000001")
    assert (created.requester_id, created.channel, created.priority) == \
        (people.employee.id, "web", 3)
    assert created.subcategory_id == printer.id
    assert "INC000001" in text_of(client.get("/portal"))


def test_raise_form_with_errors_is_shown_again_with_the_reasons(app, people):
    client = signed_in(app, people.employee)

    response = client.submit("/portal/new", "/portal/new",
                             {"title": "   ", "description": "kept text", "impact": "enormous"})

    assert response.status_code == 422
    problem = problem_of(response)
    assert "Title" in problem and "Impact" in problem and "Must be one of" in problem
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert "kept text" in response.get_data(as_text=True)  # what was typed is not lost
    assert "You have not reported any incidents" in text_of(client.get("/portal"))


def test_requester_sees_public_replies_signed_but_never_internal_notes(app, people):
    incident = raise_incident(people.employee)
    agent = signed_in(app, people.agent)

    response = agent.submit(console(incident.number), console(incident.number) + "/comment",
                            {"body": "Have you tried turning it off and on?", "public": "true"})
    assert response.status_code == 302
    response = agent.submit(console(incident.number), console(incident.number) + "/comment",
                            {"body": "User seems to be on the old driver", "public": "false"})
    assert response.status_code == 302

    console_page = agent.get(console(incident.number)).get_data(as_text=True)
    assert "old driver" in console_page
    note = re.search(r'<li class="comment comment-internal">(.*?)</li>', console_page, re.S)
    assert note and "Internal note" in note.group(1) and "old driver" in note.group(1)

    employee_page = text_of(signed_in(app, people.employee).get(portal(incident.number)))
    assert "Have you tried turning it off and on?" in employee_page
    assert "Alex Agent" in employee_page  # signed with the author's display name
    assert "old driver" not in employee_page and "Internal note" not in employee_page

    # The portal is the requester's view even when a colleague from IT opens it.
    colleague_view = text_of(signed_in(app, people.agent_b).get(portal(incident.number)))
    assert "turning it off and on" in colleague_view and "old driver" not in colleague_view


def test_requester_replies_and_an_empty_reply_is_422(app, people):
    incident = raise_incident(people.employee)
    client = signed_in(app, people.employee)

    response = client.submit(portal(incident.number), portal(incident.number) + "/reply",
                             {"body": "   "})
    assert response.status_code == 422
    assert "Text" in problem_of(response)

    response = client.submit(portal(incident.number), portal(incident.number) + "/reply",
                             {"body": "It happens every morning", "public": "false"})
    assert response.status_code == 302
    comment = db.session.scalars(db.select(Comment)).one()
    assert comment.public is True and comment.author_id == people.employee.id


def test_requester_reopens_or_confirms_a_resolved_incident(app, people):
    first = raise_incident(people.employee, "Mail is slow")
    second = raise_incident(people.employee, "Mail is slow again")
    for incident in (first, second):
        incidents.transition_incident(people.agent, incident.number, {
            "to": "resolved", "resolution_code": "fixed",
            "resolution_notes": "Mailbox moved to the new server."})
    client = signed_in(app, people.employee)

    page = text_of(client.get(portal(first.number)))
    assert "Resolution" in page and "Mailbox moved to the new server." in page
    assert "Confirm it is fixed" in page and "Reopen" in page and "Withdraw" not in page

    version = fresh(first.number).version
    response = client.submit(portal(first.number), portal(first.number) + "/status",
                             {"to": "in_progress", "version": str(version)})
    assert response.status_code == 302
    reopened = fresh(first.number)
    assert (reopened.status, reopened.reopen_count, reopened.resolution_code) == \
        ("in_progress", 1, None)
    assert "has been reopened" in text_of(client.get(portal(first.number)))

    version = fresh(second.number).version
    response = client.submit(portal(second.number), portal(second.number) + "/status",
                             {"to": "closed", "version": str(version)})
    assert response.status_code == 302
    assert fresh(second.number).status == "closed"
    page = text_of(client.get(portal(second.number)))
    assert "Send reply" not in page and "report a new incident" in page


def test_requester_withdraws_a_new_incident_but_not_one_in_progress(app, people):
    new = raise_incident(people.employee, "Wrong alarm")
    busy = raise_incident(people.employee, "Real problem")
    incidents.transition_incident(people.agent, busy.number, {"to": "in_progress"})
    client = signed_in(app, people.employee)

    assert "Withdraw" in text_of(client.get(portal(new.number)))
    assert "Withdraw" not in text_of(client.get(portal(busy.number)))

    response = client.submit(portal(new.number), portal(new.number) + "/status",
                             {"to": "cancelled", "version": "1"})
    assert response.status_code == 302
    assert fresh(new.number).status == "cancelled"

    # A forged withdrawal of the one IT is working on: refused with the reason.
    version = fresh(busy.number).version
    response = client.submit(portal(busy.number), portal(busy.number) + "/status",
                             {"to": "cancelled", "version": str(version)})
    assert response.status_code == 403
    assert "may not move" in problem_of(response)
    assert fresh(busy.number).status == "in_progress"


def test_ticket_text_is_escaped(app, people):
    incident = raise_incident(people.employee, '<script>alert("x")</script>',
                              description='<img src=x onerror="alert(1)">')
    client = signed_in(app, people.employee)
    for path in ("/portal", portal(incident.number)):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html
    agent_html = signed_in(app, people.agent).get(console(incident.number)).get_data(as_text=True)
    assert "<script>alert" not in agent_html and "<img src=x" not in agent_html


# --- the console ---------------------------------------------------------------------


def test_queue_shows_open_incidents_most_urgent_first(app, people):
    low = raise_incident(people.employee, "Low thing", impact="low", urgency="low")
    urgent = raise_incident(people.other, "Everything is down", impact="high", urgency="high")
    done = raise_incident(people.employee, "Already fixed")
    incidents.transition_incident(people.agent, done.number, {
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "ok"})
    client = signed_in(app, people.agent)

    response = client.get("/console")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = re.findall(r'<tr data-number="(INC\d+)"', html)
    assert rows == [urgent.number, low.number]
    assert "Emma Employee" in row_of(response, low.number)
    assert "Omid Other" in row_of(response, urgent.number)

    page = client.get("/console?priority=1")
    assert re.findall(r'<tr data-number="(INC\d+)"', page.get_data(as_text=True)) == \
        [urgent.number]
    page = client.get("/console?status=resolved")
    assert re.findall(r'<tr data-number="(INC\d+)"', page.get_data(as_text=True)) == \
        [done.number]


def test_queue_filters_by_assignee_and_group(app, people):
    mine = raise_incident(people.employee, "Mine")
    nobodys = raise_incident(people.employee, "Nobody's")
    network = raise_incident(people.employee, "Switch down")
    incidents.update_incident(people.agent, mine.number, {"assignee": "agent1", "version": 1})
    incidents.escalate_incident(people.agent, network.number, {})
    client = signed_in(app, people.agent)

    def numbers(query):
        response = client.get("/console" + query)
        assert response.status_code == 200, text_of(response)
        return re.findall(r'<tr data-number="(INC\d+)"', response.get_data(as_text=True))

    assert numbers("?assignee=me") == [mine.number]
    assert numbers("?assignee=agent1") == [mine.number]
    assert numbers("?assignee=none&group=Service+Desk") == [nobodys.number]
    # L2 work is not in an L1 agent's queue ...
    assert network.number not in numbers("")
    # ... but it is in the L2 agent's.
    client = signed_in(app, people.l2_agent)
    assert numbers("?group=Network+Team") == [network.number]


@pytest.mark.parametrize("query, field", [
    ("?status=bogus", "Status"),
    ("?priority=9", "Priority"),
    ("?priority=high", "Priority"),
    ("?group=No+Such+Group", "Group"),
    ("?assignee=ghost", "Assignee"),
    ("?sort=title", "Sort"),  # a queue option since "Breaches next": labelled
    ("?requester__password=x", "requester__password"),
    ("?cursor=not-a-cursor", "Page"),
])
def test_bad_queue_filters_are_a_400_page_with_the_reason(app, people, query, field):
    raise_incident(people.employee)
    response = signed_in(app, people.agent).get("/console" + query)
    assert response.status_code == 400
    assert field in problem_of(response)
    assert "INC000001" not in text_of(response)


def test_queue_pages_with_a_next_link(app, people, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    created = [raise_incident(people.employee, f"Issue {n}") for n in range(5)]
    client = signed_in(app, people.agent)

    seen, url = [], "/console?group=Service+Desk"
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += re.findall(r'<tr data-number="(INC\d+)"', html)
        match = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = unescape(match.group(1)) if match else None
        if url:
            assert "group=Service+Desk" in url  # the filter is kept
    assert seen == [i.number for i in created]


def test_take_it_and_assign(app, people):
    incident = raise_incident(people.employee)
    client = signed_in(app, people.agent)
    page = console(incident.number)

    response = client.submit(page, page + "/take", {"version": "1"})
    assert response.status_code == 302
    taken = fresh(incident.number)
    assert (taken.assignee_id, taken.status) == (people.agent.id, "assigned")
    assert "is yours now" in text_of(client.get(page))

    response = client.submit(page, page + "/assign", {
        "group": "Service Desk", "assignee": "agent2", "version": str(taken.version)})
    assert response.status_code == 302
    assert fresh(incident.number).assignee_id == people.agent_b.id
    history = text_of(client.get(page))
    assert "agent1" in history and "agent2" in history  # the history table shows the change

    # Someone outside the group: refused, named, nothing changed.
    version = fresh(incident.number).version
    response = client.submit(page, page + "/assign", {
        "group": "Service Desk", "assignee": "netagent", "version": str(version)})
    assert response.status_code == 422
    assert "Assignee" in problem_of(response) and "member" in problem_of(response)
    assert fresh(incident.number).assignee_id == people.agent_b.id


def test_transition_with_required_fields_missing_is_422_and_changes_nothing(app, people):
    incident = raise_incident(people.employee)
    client = signed_in(app, people.agent)
    page = console(incident.number)

    response = client.submit(page, page + "/transition", {
        "to": "resolved", "version": "1", "resolution_code": "",
        "resolution_notes": "Replaced the toner."})

    assert response.status_code == 422
    problem = problem_of(response)
    assert "Resolution code" in problem and "Required to move to resolved" in problem
    assert "Resolution notes" not in problem
    assert "Replaced the toner." in response.get_data(as_text=True)  # typed text kept
    assert fresh(incident.number).status == "new"

    response = client.submit(page, page + "/transition", {"to": "pending", "version": "1"})
    assert response.status_code == 422 and "Pending reason" in problem_of(response)

    response = client.submit(page, page + "/transition", {
        "to": "resolved", "version": "1", "resolution_code": "fixed",
        "resolution_notes": "Replaced the toner."})
    assert response.status_code == 302
    resolved = fresh(incident.number)
    assert (resolved.status, resolved.resolution_code) == ("resolved", "fixed")
    assert "Status changed to Resolved" in text_of(client.get(page))


def test_an_illegal_transition_is_a_409_naming_the_allowed_ones(app, people):
    incident = raise_incident(people.employee)
    client = signed_in(app, people.agent)
    page = console(incident.number)

    response = client.submit(page, page + "/transition", {"to": "closed", "version": "1"})

    assert response.status_code == 409
    assert "allowed" in problem_of(response)
    assert fresh(incident.number).status == "new"


def test_escalate_to_the_next_line(app, people):
    incident = raise_incident(people.employee)
    incidents.update_incident(people.agent, incident.number, {"assignee": "agent1", "version": 1})
    client = signed_in(app, people.agent)
    page = console(incident.number)
    version = fresh(incident.number).version

    response = client.submit(page, page + "/escalate", {
        "group": "", "note": "Looks like the core switch", "version": str(version)})

    # Out of the L1 agent's sight now: back to their queue, not on to a 404.
    assert response.status_code == 302 and response.headers["Location"].endswith("/console")
    assert "escalated to the next support line" in text_of(client.get("/console"))
    escalated = fresh(incident.number)
    assert (escalated.group_id, escalated.support_line, escalated.assignee_id) == \
        (people.l2.id, 2, None)
    note = db.session.scalars(db.select(Comment)).one()
    assert note.public is False and "core switch" in note.body
    assert client.get(page).status_code == 404
    assert incident.number in signed_in(app, people.l2_agent).get("/console").get_data(
        as_text=True)


def test_escalating_to_a_group_of_the_wrong_line_is_422(app, people):
    incident = raise_incident(people.employee)
    client = signed_in(app, people.agent)
    page = console(incident.number)

    response = client.submit(page, page + "/escalate", {"group": "Engineering", "version": "1"})

    assert response.status_code == 422
    assert "Group" in problem_of(response) and "support line 2" in problem_of(response)
    assert fresh(incident.number).support_line == 1


def test_edit_classification_and_a_stale_form_is_409(app, people):
    incident = raise_incident(people.employee)
    client = signed_in(app, people.agent)
    page = console(incident.number)
    stale_token = client.token(page)  # the agent opened the page at version 1 ...

    # ... someone else changes the incident meanwhile ...
    incidents.update_incident(people.agent_b, incident.number, {"urgency": "low", "version": 1})

    # ... and the agent saves the form still carrying version 1.
    response = client.post(page + "/edit", data={
        "csrf_token": stale_token, "impact": "high", "urgency": "high", "version": "1"})

    assert response.status_code == 409
    assert "changed by someone else" in problem_of(response)
    current = fresh(incident.number)
    assert (current.impact, current.urgency, current.priority) == ("medium", "low", 4)
    # The form now shows what is stored (not the stale values) under the current version.
    form = re.search(r'<form[^>]*id="edit-form".*?</form>', response.get_data(as_text=True),
                     re.S).group(0)
    assert f'name="version" value="{current.version}"' in form
    assert re.search(r'name="urgency".*?<option value="low" selected>', form, re.S)
    assert not re.search(r'<option value="high" selected>', form)

    response = client.submit(page, page + "/edit", {
        "impact": "high", "urgency": "high", "version": str(current.version),
        "category_id": "", "subcategory_id": ""})
    assert response.status_code == 302
    assert fresh(incident.number).priority == 1


def test_a_finished_incident_offers_no_actions(app, people):
    incident = raise_incident(people.employee)
    incidents.transition_incident(people.agent, incident.number, {"to": "cancelled"})
    page = text_of(signed_in(app, people.agent).get(console(incident.number)))
    for action in ("Take it", "Change status", "Escalate to", "Add comment", "Save"):
        assert action not in page
    assert "Cancelled" in page


def test_pages_carry_no_inline_script_or_style(app, people):
    """The CSP forbids them: a page relying on one would silently break."""
    incident = raise_incident(people.employee)
    employee, agent = signed_in(app, people.employee), signed_in(app, people.agent)
    for client, path in ((employee, "/portal"), (employee, "/portal/new"),
                         (employee, portal(incident.number)), (agent, "/console"),
                         (agent, console(incident.number)), (employee, "/login")):
        html = client.get(path).get_data(as_text=True)
        # A script from our origin (<script src>) is what the CSP allows; inline is not.
        assert not re.search(r"<script(?![^>]*\ssrc=)|<style|\sstyle=|\son\w+=", html), path
        assert len(_TOKEN.findall(html)) == html.count("<form") - html.count('method="get"'), path

