"""Satisfaction surveys: offered on resolution, e-mailed with a signed single-use link
that needs no login, answered once, reopening within the window, CSAT figures."""

from __future__ import annotations

import re
import time
import warnings
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import SAWarning
from test_email_smtp import SmtpServer, deliver_all, use_smtp
from test_web_pages import PASSWORD, problem_of, signed_in, text_of

from servicedesk.csat import service as csat
from servicedesk.csat.models import Survey
from servicedesk.extensions import db
from servicedesk.notify.models import Notification
from servicedesk.types import utcnow

BASE = "https://desk.example.test"
LINK = re.compile(re.escape(BASE) + r"/survey/([A-Za-z0-9_.\-]+)")


@pytest.fixture
def people(app, world):
    app.config["SERVICEDESK_BASE_URL"] = BASE
    l1 = world.group("Service Desk", 1)

    class People:
        agent = world.user("agent", "agent1", groups=[l1], password=PASSWORD)
        employee = world.user("requester", "emma", password=PASSWORD)
        other = world.user("requester", "omid", password=PASSWORD)

    return People


def resolve(world, people, number: str):
    response = world.api(people.agent).post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Replaced toner."})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def resolved_incident(world, people) -> tuple[str, str]:
    """A resolved incident of the employee, and the token e-mailed to her."""
    number = world.incident(people.employee)["number"]
    resolve(world, people, number)
    return number, token_from_mail(number)


def survey_mails(number: str) -> list[Notification]:
    db.session.rollback()
    return [n for n in db.session.scalars(
        select(Notification).where(Notification.event == "ticket.survey").order_by(Notification.id))
        if n.subject.startswith(f"[{number}]")]


def token_from_mail(number: str) -> str:
    mails = survey_mails(number)
    assert mails, "no survey e-mail in the outbox"
    return LINK.search(mails[-1].body_text).group(1)


def surveys(number: str) -> list[Survey]:
    db.session.rollback()
    db.session.expire_all()
    return [s for s in db.session.scalars(select(Survey).order_by(Survey.id))
            if s.ticket.number == number]


def answer(client, token: str, **data):
    return client.post(f"/survey/{token}", data=data)


# --- schema ---------------------------------------------------------------------------


def test_the_migration_builds_exactly_the_model(app):
    with db.engine.connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert [entry for entry in diff if "csat" in repr(entry)] == []


# --- offering -------------------------------------------------------------------------


def test_resolving_mails_the_requester_a_link_that_works_without_login(app, world, people):
    server = SmtpServer().start()
    try:
        use_smtp(app, server.port)
        number = world.incident(people.employee)["number"]
        resolve(world, people, number)
        [mail] = survey_mails(number)
        assert mail.recipient_id == people.employee.id
        assert deliver_all()["sent"] >= 1
        received = [r for r in server.received if "emma@example.test" in r.rcpt_tos
                    and number in r.message["Subject"]]
        survey_mail = [r for r in received if "/survey/" in r.message.get_body(
            ("plain",)).get_content()]
        assert len(survey_mail) == 1
    finally:
        server.stop()
    token = LINK.search(survey_mail[0].message.get_body(("plain",)).get_content()).group(1)
    anonymous = app.test_client()
    page = anonymous.get(f"/survey/{token}?rating=4")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert number in html and 'value="4" required checked' in html
    assert surveys(number)[0].answered_at is None  # a GET records nothing
    response = answer(anonymous, token, rating="4", comment="Quick, thanks")
    assert response.status_code == 302
    [survey] = surveys(number)
    assert (survey.rating, survey.comment) == (4, "Quick, thanks")
    assert survey.answered_at is not None and survey.token_hash != token


def test_cancelling_offers_no_survey_and_each_resolution_gets_its_own(app, world, people):
    number = world.incident(people.employee)["number"]
    world.api(people.employee).post(f"/incidents/{number}/transition", json={"to": "cancelled"})
    assert surveys(number) == [] and survey_mails(number) == []
    number = world.incident(people.employee)["number"]
    resolve(world, people, number)
    reopened = world.api(people.employee).post(f"/incidents/{number}/transition",
                                               json={"to": "in_progress"})
    assert reopened.status_code == 200
    resolve(world, people, number)
    first, second = surveys(number)
    assert first.reopened and not second.reopened
    assert len(survey_mails(number)) == 2
    # Closing a resolved ticket is not a second resolution.
    world.api(people.employee).post(f"/incidents/{number}/transition", json={"to": "closed"})
    assert len(surveys(number)) == 2


def test_resolving_a_problem_asks_nobody_but_its_resolved_incidents_are_surveyed(
        app, world, people):
    """Surveys are for the people IT serves: not for problems (raised by staff)."""
    incident = world.incident(people.employee)["number"]
    staff = world.api(people.agent)
    created = staff.post("/problems", json={"title": "Toner smears", "incidents": [incident]})
    assert created.status_code == 201, created.get_json()
    problem = created.get_json()["number"]
    for body in ({"to": "investigating"},
                 {"to": "resolved", "resolution_notes": "New fuser unit.",
                  "resolve_incidents": True}):
        moved = staff.post(f"/problems/{problem}/transition", json=body)
        assert moved.status_code == 200, moved.get_json()
    assert surveys(problem) == [] and survey_mails(problem) == []
    assert "problem" not in csat.SURVEYED_KINDS and "change" not in csat.SURVEYED_KINDS
    # The incident it resolved is the employee's: she is asked about that one.
    [survey] = surveys(incident)
    [mail] = survey_mails(incident)
    assert mail.recipient_id == people.employee.id and survey.ticket.kind == "incident"


# --- answering ------------------------------------------------------------------------


def test_a_link_answers_once(app, world, people):
    number, token = resolved_incident(world, people)
    client = app.test_client()
    assert answer(client, token, rating="5").status_code == 302
    again = answer(client, token, rating="1", comment="changed my mind")
    assert again.status_code == 409
    assert "already been answered" in text_of(again)
    page = client.get(f"/survey/{token}")
    assert page.status_code == 200 and "already been answered" in text_of(page)
    api = world.api().post(f"/surveys/{token}", json={"rating": 2})
    assert api.status_code == 409 and api.get_json()["error"]["code"] == "already_answered"
    [survey] = surveys(number)
    assert (survey.rating, survey.comment) == (5, None)


@pytest.mark.parametrize("rating", ["0", "6", "x", ""])
def test_a_rating_out_of_range_is_refused_naming_the_field(app, world, people, rating):
    number, token = resolved_incident(world, people)
    response = answer(app.test_client(), token, rating=rating)
    assert response.status_code == 400
    assert "rating" in problem_of(response).lower()
    assert surveys(number)[0].answered_at is None


def test_the_api_answers_with_the_token_alone_and_names_bad_fields(app, world, people):
    number, token = resolved_incident(world, people)
    anonymous = world.api()
    for body in ({"rating": 9}, {"rating": "5"}, {}, {"rating": 3, "extra": 1}):
        response = anonymous.post(f"/surveys/{token}", json=body)
        assert response.status_code == 400, body
        fields = response.get_json()["error"]["fields"]
        assert set(fields) & {"rating", "extra"}, fields
    assert surveys(number)[0].answered_at is None
    response = anonymous.post(f"/surveys/{token}", json={"rating": 3, "comment": "ok"})
    assert response.status_code == 200
    assert response.get_json()["rating"] == 3 and response.get_json()["ticket"] == number


def _tamper(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


def test_tampered_forged_and_expired_links_are_refused_never_500(app, world, people, monkeypatch):
    number, token = resolved_incident(world, people)
    client = app.test_client()
    for bad in (_tamper(token), "nonsense", "a.b.c", token + "x", "%00", "." * 300):
        for response in (client.get(f"/survey/{bad}"), answer(client, bad, rating="5"),
                         client.post(f"/survey/{bad}/reopen"),
                         world.api().post(f"/surveys/{bad}", json={"rating": 5})):
            assert 400 <= response.status_code < 500, (bad, response.status_code)
    # Signed with another secret: refused too.
    app.config["SECRET_KEY"], secret = "another-secret", app.config["SECRET_KEY"]
    assert client.get(f"/survey/{token}").status_code == 400
    app.config["SECRET_KEY"] = secret
    # Older than the link lifetime: refused as expired.
    import itsdangerous.timed

    later = time.time() + 31 * 86400

    class Later:
        @staticmethod
        def time():
            return later

    monkeypatch.setattr(itsdangerous.timed, "time", Later)
    response = answer(client, token, rating="5")
    assert response.status_code == 410 and "expired" in text_of(response)
    assert world.api().post(f"/surveys/{token}", json={"rating": 5}).status_code == 410
    assert surveys(number)[0].answered_at is None


# --- reopening ------------------------------------------------------------------------


def test_reopen_from_the_survey_page_within_the_window(app, world, people):
    number, token = resolved_incident(world, people)
    client = app.test_client()
    page = client.get(f"/survey/{token}")
    assert 'id="reopen"' in page.get_data(as_text=True)
    response = client.post(f"/survey/{token}/reopen")
    assert response.status_code == 302
    incident = world.api(people.employee).get(f"/incidents/{number}").get_json()
    assert incident["status"] == "in_progress"
    assert surveys(number)[0].reopened
    # Nothing to reopen any more: the button is gone and a replay is refused with why.
    assert 'id="reopen"' not in client.get(f"/survey/{token}").get_data(as_text=True)
    again = client.post(f"/survey/{token}/reopen")
    assert again.status_code == 409 and "cannot be reopened" in problem_of(again)


def test_reopen_after_the_window_is_refused_with_the_reason(app, world, people):
    number, token = resolved_incident(world, people)
    [survey] = surveys(number)
    survey.ticket.resolved_at = utcnow() - timedelta(days=8)
    db.session.commit()
    client = app.test_client()
    assert 'id="reopen"' not in client.get(f"/survey/{token}").get_data(as_text=True)
    response = client.post(f"/survey/{token}/reopen")
    assert response.status_code == 409
    assert "can no longer be reopened" in problem_of(response)
    assert world.api(people.employee).get(f"/incidents/{number}").get_json()["status"] \
        == "resolved"
    # Rating is still possible after the reopen window.
    assert answer(client, token, rating="2").status_code == 302


# --- portal and API -------------------------------------------------------------------


def test_the_portal_asks_the_requester_to_rate_a_resolved_incident(app, world, people):
    number = world.incident(people.employee)["number"]
    client = signed_in(app, people.employee)
    assert "csat-prompt" not in client.get(f"/portal/incidents/{number}").get_data(as_text=True)
    resolve(world, people, number)
    page = f"/portal/incidents/{number}"
    assert "csat-prompt" in client.get(page).get_data(as_text=True)
    action = f"/portal/incidents/{number}/survey"
    bad = client.submit(page, action, {"rating": "7"})
    assert bad.status_code == 400 and "rating" in problem_of(bad).lower()
    done = client.submit(page, action, {"rating": "3", "comment": "fine"})
    assert done.status_code == 302
    assert (surveys(number)[0].rating, surveys(number)[0].comment) == (3, "fine")
    assert "csat-prompt" not in client.get(page).get_data(as_text=True)
    # Without its CSRF token the portal form is refused (it rides on a session cookie).
    assert client.post(action, data={"rating": "1"}).status_code == 400


def test_the_survey_api_is_for_the_requester_and_staff(app, world, people):
    number, token = resolved_incident(world, people)
    mine = world.api(people.employee).get(f"/incidents/{number}/survey")
    assert mine.status_code == 200 and mine.get_json()["answered_at"] is None
    assert world.api(people.agent).get(f"/incidents/{number}/survey").status_code == 200
    assert world.api(people.other).get(f"/incidents/{number}/survey").status_code == 404
    assert world.api().get(f"/incidents/{number}/survey").status_code == 401
    unresolved = world.incident(people.employee)["number"]
    assert world.api(people.agent).get(f"/incidents/{unresolved}/survey").status_code == 404


# --- figures --------------------------------------------------------------------------


def test_csat_stats_of_a_period(app, world, people):
    start = utcnow() - timedelta(minutes=5)
    assert csat.csat_stats(start, utcnow() + timedelta(minutes=5)) == {
        "average": None, "responses": 0, "sent": 0, "response_rate": None}
    tokens = [resolved_incident(world, people)[1] for _ in range(3)]
    client = app.test_client()
    answer(client, tokens[0], rating="5")
    answer(client, tokens[1], rating="2")
    end = utcnow() + timedelta(minutes=5)
    assert csat.csat_stats(start, end) == {
        "average": 3.5, "responses": 2, "sent": 3, "response_rate": 0.6667}
    assert csat.csat_stats(end, end + timedelta(days=1))["sent"] == 0
