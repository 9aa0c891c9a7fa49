"""SLA administration: the pages for calendars, policies and OLAs, and the automatic
repair of open tickets' clocks after an edit.

Pages go through Flask's test client with the real login form and CSRF tokens taken
from the pages (tests/test_web_pages.py's PageClient). The repair runs as a job: on the
embedded in-process timer, and on a real RQ worker against the real Redis. Every test
runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import timedelta

import pytest
from conftest import SERVICEDESK, redis_test_url
from redis import Redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import func, select

from servicedesk import jobs
from servicedesk.extensions import db
from servicedesk.sla.models import GroupOla, SlaCalendar, SlaClock, SlaPolicy
from servicedesk.sla.service import build_calendar
from servicedesk.tickets.models import Ticket
from test_web_pages import PASSWORD, problem_of, signed_in, text_of
from test_web_pages import quick_hashes  # noqa: F401  (autouse: few hashing rounds)

CALENDARS = "/console/sla/calendars"
POLICIES = "/console/sla/policies"
OLAS = "/console/sla/olas"
OFFICE_WEEK = {str(d): [["09:00", "17:00"]] for d in range(5)}
TEST_REDIS_URL = redis_test_url(9, "SERVICEDESK_TEST_REDIS_SLA")


@pytest.fixture
def people(world):
    class People:
        l1 = world.group("Service Desk", 1)
        l2 = world.group("Network Team", 2)
        admin = world.user("admin", "root", password=PASSWORD)
        agent = world.user("agent", "alex", groups=[l1], password=PASSWORD)
        employee = world.user("requester", "emma", password=PASSWORD)

    return People


@pytest.fixture
def office(world, people):
    body = world.api(people.admin).post("/sla/calendars", json={
        "name": "Office", "timezone": "Europe/Berlin", "week": OFFICE_WEEK}).get_json()
    return db.session.get(SlaCalendar, body["id"])


def _count(model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def _fresh(model, row_id):
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(model, row_id)


def _field_error(response, name: str) -> str:
    """The reasons shown next to field ``name``; "" if none."""
    html = response.get_data(as_text=True)
    match = re.search(rf'<span class="field-error" id="{name}-error">(.*?)</span>', html, re.S)
    return match.group(1).strip() if match else ""


def _calendar_form(**changes) -> dict:
    form = {"name": "Support hours", "timezone": "Europe/Berlin",
            "day_0": "09:00-12:00, 13:00-17:00", "day_1": "09:00-17:00", "day_2": "",
            "day_3": "", "day_4": "08:00-14:00", "day_5": "", "day_6": "",
            "holidays": "2026-12-25\n2026-12-24..2026-12-31\n"}
    return {**form, **changes}


# --- calendars -----------------------------------------------------------------------------


def test_staff_find_the_sla_pages_in_the_navigation_and_requesters_do_not(app, people, office):
    admin = signed_in(app, people.admin)
    console = admin.get("/console")
    assert 'href="/console/sla/calendars"' in console.get_data(as_text=True)
    listing = admin.get(CALENDARS)
    assert listing.status_code == 200
    assert "Office" in text_of(listing) and "Europe/Berlin" in text_of(listing)
    portal = signed_in(app, people.employee).get("/portal")
    assert "/console/sla" not in portal.get_data(as_text=True)


def test_an_admin_creates_a_calendar_from_one_line_per_weekday(app, people):
    client = signed_in(app, people.admin)
    response = client.submit(CALENDARS + "/new", CALENDARS + "/new", _calendar_form())
    assert response.status_code == 302, problem_of(response)
    row = db.session.scalars(select(SlaCalendar)).one()
    assert row.week == {"0": [["09:00", "12:00"], ["13:00", "17:00"]], "1": [["09:00", "17:00"]],
                        "4": [["08:00", "14:00"]]}
    assert row.holidays == [["2026-12-24", "2026-12-31"]]  # the 25th is inside the range
    page = client.get(response.headers["Location"])
    assert "has been created" in text_of(page)
    html = page.get_data(as_text=True)
    assert 'name="day_0" value="09:00-12:00, 13:00-17:00"' in html
    assert "2026-12-24..2026-12-31" in html


@pytest.mark.parametrize("changes, field, reason", [
    ({"day_0": "9 to 5"}, "day_0", "is not an interval"),
    ({"day_0": "09:00-13:00, 12:00-17:00"}, "week", "overlap"),
    ({"day_1": "17:00-09:00"}, "week", "ends at or before it starts"),
    ({"day_1": "09:00-25:00"}, "week", "not a time of day"),
    ({"day_0": "", "day_1": "", "day_4": ""}, "week", "no working time"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"holidays": "2026-13-01"}, "holidays", "YYYY-MM-DD"),
    ({"holidays": "2026-12-31..2026-12-24"}, "holidays", "ends before it starts"),
    ({"name": ""}, "name", "between 1 and 120"),
])
def test_bad_calendar_input_is_shown_next_to_its_field_and_changes_nothing(
        app, people, changes, field, reason):
    client = signed_in(app, people.admin)
    response = client.submit(CALENDARS + "/new", CALENDARS + "/new", _calendar_form(**changes))
    assert response.status_code == 422
    assert reason.lower() in _field_error(response, field).lower(), problem_of(response)
    assert _count(SlaCalendar) == 0
    if field != "name":  # what was typed is kept, so it can be corrected
        assert 'value="Support hours"' in response.get_data(as_text=True)


def test_the_page_and_the_api_give_the_same_reasons(world, app, people):
    api = world.api(people.admin).post("/sla/calendars", json={
        "name": "X", "timezone": "UTC", "week": {"0": [["09:00", "13:00"], ["12:00", "17:00"]]}})
    page = signed_in(app, people.admin).submit(
        CALENDARS + "/new", CALENDARS + "/new",
        _calendar_form(timezone="UTC", day_0="09:00-13:00, 12:00-17:00", day_1="", day_4=""))
    assert api.status_code == page.status_code == 422
    assert _field_error(page, "week") == api.get_json()["error"]["fields"]["week"][0]


def test_an_admin_edits_a_calendar_and_a_stale_form_is_refused(app, people, office):
    url = f"{CALENDARS}/{office.id}"
    first, second = signed_in(app, people.admin), signed_in(app, people.admin)
    token = first.token(url)
    stale_token = second.token(url)                      # both read version 1
    changed = first.post(url, data={"csrf_token": token, **_calendar_form(
        name="Office", day_0="08:00-16:00"), "version": "1"})
    assert changed.status_code == 302, problem_of(changed)
    assert _fresh(SlaCalendar, office.id).week["0"] == [["08:00", "16:00"]]
    assert "has been saved" in text_of(first.get(url))

    lost = second.post(url, data={"csrf_token": stale_token, **_calendar_form(
        name="Office", day_0="10:00-11:00"), "version": "1"})
    assert lost.status_code == 409
    assert "changed by someone else" in problem_of(lost)
    html = lost.get_data(as_text=True)
    assert 'name="day_0" value="08:00-16:00"' in html   # what is stored now is shown
    assert 'name="version" value="2"' in html
    row = _fresh(SlaCalendar, office.id)
    assert (row.version, row.week["0"]) == (2, [["08:00", "16:00"]])


def test_other_staff_read_the_pages_but_cannot_change_anything(app, people, office):
    agent = signed_in(app, people.agent)
    page = agent.get(f"{CALENDARS}/{office.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<fieldset" in html and " disabled" in html and ">Save<" not in html
    assert "Only admins change these settings." in text_of(page)
    assert "New calendar" not in text_of(agent.get(CALENDARS))
    assert agent.get(CALENDARS + "/new").status_code == 403
    token = agent.token(CALENDARS)
    response = agent.post(f"{CALENDARS}/{office.id}", data={
        "csrf_token": token, **_calendar_form(name="Hijacked"), "version": "1"})
    assert response.status_code == 403
    assert _fresh(SlaCalendar, office.id).name == "Office"
    for url in (POLICIES, OLAS):
        assert agent.get(url).status_code == 200


def test_requesters_get_403_everywhere(app, people, office):
    client = signed_in(app, people.employee)
    for url in (CALENDARS, f"{CALENDARS}/{office.id}", CALENDARS + "/new", POLICIES, OLAS):
        assert client.get(url).status_code == 403, url
    token = client.token("/portal")
    response = client.post(CALENDARS + "/new", data={"csrf_token": token, **_calendar_form()})
    assert response.status_code == 403
    assert _count(SlaCalendar) == 1


def test_a_form_without_its_csrf_token_is_refused(app, people):
    client = signed_in(app, people.admin)
    response = client.post(CALENDARS + "/new", data=_calendar_form())
    assert response.status_code == 400
    assert _count(SlaCalendar) == 0


def test_an_unknown_record_is_404(app, people):
    client = signed_in(app, people.admin)
    assert client.get(f"{CALENDARS}/999").status_code == 404
    assert client.get("/console/sla/nonsense").status_code == 404


# --- policies and OLAs -----------------------------------------------------------------


def _policy_form(calendar, **changes) -> dict:
    form = {"name": "Standard", "position": "", "calendar_id": str(calendar),
            "active": "true", "response_minutes": "180", "resolution_minutes": "480",
            "warning_percent": "80", "pause_statuses": ["pending:awaiting_requester"],
            "priorities": ["3", "4"], "service_ids": "", "steps": "[]"}
    return {**form, **changes}


def test_an_admin_creates_and_edits_a_policy(app, people, office):
    client = signed_in(app, people.admin)
    response = client.submit(POLICIES + "/new", POLICIES + "/new", _policy_form(office.id))
    assert response.status_code == 302, problem_of(response)
    policy = db.session.scalars(select(SlaPolicy)).one()
    assert (policy.priorities, policy.response_minutes, policy.warning_percent) == ([3, 4], 180, 80)
    assert policy.pause_statuses == ["pending:awaiting_requester"] and policy.active
    url = f"{POLICIES}/{policy.id}"
    form = _policy_form(office.id, response_minutes="", priorities=[], pause_statuses=["pending"],
                        position="0", version="1")
    del form["active"]                                   # unticked
    edited = client.submit(url, url, form)
    assert edited.status_code == 302, problem_of(edited)
    policy = _fresh(SlaPolicy, policy.id)
    assert policy.response_minutes is None and policy.priorities == []
    assert policy.pause_statuses == ["pending"] and policy.active is False
    assert policy.version == 2
    assert "Standard" in text_of(client.get(POLICIES))


@pytest.mark.parametrize("changes, field", [
    ({"resolution_minutes": "-5"}, "resolution_minutes"),
    ({"resolution_minutes": "lots"}, "resolution_minutes"),
    ({"warning_percent": "100"}, "warning_percent"),
    ({"pause_statuses": ["resolved"]}, "pause_statuses"),
    ({"calendar_id": "999"}, "calendar_id"),
    ({"service_ids": "1, two"}, "service_ids"),
    ({"steps": "[{"}, "steps"),
])
def test_bad_policy_input_is_shown_next_to_its_field_and_changes_nothing(
        app, people, office, changes, field):
    client = signed_in(app, people.admin)
    response = client.submit(POLICIES + "/new", POLICIES + "/new",
                             _policy_form(office.id, **changes))
    assert response.status_code == 422, problem_of(response)
    assert _field_error(response, field), problem_of(response)
    assert _count(SlaPolicy) == 0


def test_an_admin_gives_a_group_its_ola_on_the_page(app, people, office):
    client = signed_in(app, people.admin)
    form = {"group_id": str(people.l2.id), "target_minutes": "240", "response_minutes": "30",
            "calendar_id": str(office.id), "warning_percent": "75", "active": "true",
            "pause_statuses": ["pending:awaiting_requester"]}
    created = client.submit(OLAS + "/new", OLAS + "/new", form)
    assert created.status_code == 302, problem_of(created)
    row = db.session.scalars(select(GroupOla)).one()
    assert (row.group_id, row.target_minutes, row.response_minutes) == (people.l2.id, 240, 30)
    assert "Network Team" in text_of(client.get(OLAS))
    again = client.submit(OLAS + "/new", OLAS + "/new", form)
    assert again.status_code == 409 and "already" in _field_error(again, "group_id").lower()
    url = f"{OLAS}/{row.id}"
    bad = client.submit(url, url, {**form, "target_minutes": "0", "version": "1"})
    assert bad.status_code == 422 and _field_error(bad, "target_minutes")
    good = client.submit(url, url, {**form, "target_minutes": "300", "response_minutes": "",
                                    "version": "1"})
    assert good.status_code == 302, problem_of(good)
    row = _fresh(GroupOla, row.id)
    assert (row.target_minutes, row.response_minutes, row.version) == (300, None, 2)
    assert _count(GroupOla) == 1


# --- automatic repair after an edit --------------------------------------------------------


@pytest.fixture
def standard(world, people, office):
    """A policy (resolution 480 business minutes on Office) and an open incident."""
    api = world.api(people.admin)
    response = api.post("/sla/policies", json={"name": "Standard", "calendar_id": office.id,
                                               "resolution_minutes": 480})
    assert response.status_code == 201, response.get_json()
    return world.incident(people.employee)["number"]


def _resolution_due(number):
    db.session.rollback()
    try:
        return db.session.scalar(
            select(SlaClock.due_at).join(Ticket, Ticket.id == SlaClock.ticket_id)
            .where(Ticket.number == number, SlaClock.metric == "resolution"))
    finally:
        db.session.rollback()


def _expected_due(number, week):
    created = db.session.scalar(select(Ticket.created_at).where(Ticket.number == number))
    db.session.rollback()
    return build_calendar("Europe/Berlin", week, []).add(created, timedelta(minutes=480))


SHORT_WEEK = {str(d): [["10:00", "12:00"]] for d in range(5)}


def test_without_redis_the_in_process_timer_repairs_after_an_edit(world, app, people, office,
                                                                  standard):
    app.extensions["servicedesk"].pop("deferred_jobs", None)
    assert _resolution_due(standard) == _expected_due(standard, OFFICE_WEEK)
    api = world.api(people.admin)
    for version, week in ((1, {"0": [["09:00", "10:00"]]}), (2, SHORT_WEEK)):  # a burst
        response = api.put(f"/sla/calendars/{office.id}", json={"week": week, "version": version})
        assert response.status_code == 200, response.get_json()
    # Not in the request: the clock has not moved yet, and one repair waits.
    assert _resolution_due(standard) == _expected_due(standard, OFFICE_WEEK)
    assert list(app.extensions["servicedesk"]["deferred_jobs"]) == ["sla-repair"]
    jobs.InProcessJobs(app, tick=3600).run_deferred()
    assert _resolution_due(standard) == _expected_due(standard, SHORT_WEEK)
    assert app.extensions["servicedesk"]["deferred_jobs"] == {}


@pytest.fixture
def redis_url(app):
    connection = Redis.from_url(TEST_REDIS_URL)
    connection.ping()
    connection.flushdb()
    app.config["SERVICEDESK_REDIS_URL"] = TEST_REDIS_URL
    yield TEST_REDIS_URL
    connection.flushdb()
    connection.close()


@pytest.mark.jobs
def test_with_redis_a_burst_of_edits_queues_one_repair_that_a_real_worker_runs(
        world, app, people, office, standard, redis_url):
    api = world.api(people.admin)
    for version, week in ((1, {"0": [["09:00", "10:00"]]}), (2, SHORT_WEEK)):
        response = api.put(f"/sla/calendars/{office.id}", json={"week": week, "version": version})
        assert response.status_code == 200, response.get_json()
    queue = jobs.get_queue(app)
    assert queue.job_ids == ["sla-repair-1"]
    assert _resolution_due(standard) == _expected_due(standard, OFFICE_WEEK)  # not yet
    env = {**os.environ, "SERVICEDESK_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "SERVICEDESK_REDIS_URL": redis_url, "SERVICEDESK_SECRET_KEY": "worker-test-secret"}
    db.session.rollback()
    result = subprocess.run([SERVICEDESK, "worker", "--burst"], env=env, capture_output=True,
                            text=True, timeout=120)
    job = Job.fetch("sla-repair-1", connection=Redis.from_url(redis_url),
                    serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FINISHED, (result.stdout, result.stderr)
    assert _resolution_due(standard) == _expected_due(standard, SHORT_WEEK)
    # The claim went with the job: the next edit queues the next repair.
    response = api.put(f"/sla/calendars/{office.id}", json={"week": OFFICE_WEEK, "version": 3})
    assert response.status_code == 200
    assert queue.job_ids == ["sla-repair-2"]
