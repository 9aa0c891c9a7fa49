"""Knowledge-base pages through Flask's test client: the employees' search and article
pages, suggestions on the new-incident form and "this solved my problem", the agents'
editor, the admins' analytics. Users sign in through the real form; every POST carries
the CSRF token of the page, as a browser sends it."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.incidents import service as incidents
from servicedesk.incidents.models import Incident
from servicedesk.kb import service as kb
from servicedesk.kb.models import Article, ArticleView, Deflection, Search, TicketLink

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_SESSION = re.compile(r'name="kb_session" value="([^"]+)"')


class PageClient(FlaskClient):
    """A browser-like client (each request starts with an empty ``g``, as a real one)."""

    def open(self, *args, **kwargs):
        for name in list(g):
            g.pop(name)
        return super().open(*args, **kwargs)

    def token(self, page: str) -> str:
        response = self.get(page)
        assert response.status_code == 200, (page, response.status_code)
        return _TOKEN.search(response.get_data(as_text=True)).group(1)


def signed_in(app, user) -> PageClient:
    client = PageClient(app, app.response_class, use_cookies=True)
    token = client.token("/login")
    response = client.post("/login", data={"csrf_token": token, "username": user.username,
                                           "password": PASSWORD})
    assert response.status_code == 302
    return client


def html_of(response) -> str:
    return response.get_data(as_text=True)


def text_of(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html_of(response), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def people(world):
    class People:
        l1 = world.group("Service Desk", 1)
        agent = world.user("agent", "agent1", groups=[l1], password=PASSWORD,
                           display_name="Alex Agent")
        manager = world.user("manager", "boss", groups=[l1], password=PASSWORD)
        admin = world.user("admin", "root", password=PASSWORD)
        employee = world.user("requester", "emma", password=PASSWORD,
                              display_name="Emma Employee")
        other = world.user("requester", "omid", password=PASSWORD)

    return People


def publish(people, title, body, **fields) -> int:
    article = kb.create_article(people.agent, {"title": title, "body": body, **fields})
    kb.transition_article(people.agent, article.id, "review")
    kb.transition_article(people.manager, article.id, "published")
    return article.id


@pytest.fixture
def library(people):
    class Library:
        vpn = publish(people, "VPN drops at home",
                      "Restart your router, then reconnect the **VPN** client.", tags=["vpn"])
        internal = publish(people, "VPN concentrator failover",
                           "Fail the VPN concentrator over to the standby node.",
                           audience="agents")
        draft = kb.create_article(people.agent, {"title": "VPN draft notes",
                                                 "body": "VPN unfinished"}).id

    return Library


# --- portal search and article pages -------------------------------------------------


def test_employee_search_shows_published_articles_for_employees_only(app, people, library):
    response = signed_in(app, people.employee).get("/portal/kb?q=vpn")

    assert response.status_code == 200
    html = html_of(response)
    assert f'data-article="{library.vpn}"' in html
    assert "concentrator" not in html and "draft notes" not in html
    assert "<mark>VPN</mark>" in html
    [row] = db.session.scalars(select(Search)).all()
    assert (row.query, row.result_count, row.source, row.user_id) == \
        ("vpn", 1, "search", people.employee.id)
    assert f"search={row.id}" in html  # the result links carry the search, for its click


def test_a_search_without_results_is_logged_and_offers_an_incident(app, people, library):
    response = signed_in(app, people.employee).get("/portal/kb?q=printer+toner")
    assert "No article matches" in text_of(response)
    assert 'href="/portal/new"' in html_of(response)
    assert db.session.scalars(select(Search.result_count)).all() == [0]


@pytest.mark.parametrize("query, field", [("q=" + "x" * 201, "q"), ("q=vpn&locale=xx", "locale")])
def test_a_bad_search_is_a_400_naming_the_field_and_logs_nothing(app, people, query, field):
    response = signed_in(app, people.employee).get("/portal/kb?" + query)
    assert response.status_code == 400
    assert 'role="alert"' in html_of(response) and field in html_of(response)
    assert count(Search) == 0


def test_opening_a_result_counts_a_view_and_the_searchs_click(app, people, library):
    emma = signed_in(app, people.employee)
    emma.get("/portal/kb?q=vpn")
    search_id = db.session.scalar(select(Search.id))

    response = emma.get(f"/portal/kb/articles/{library.vpn}?search={search_id}")

    assert response.status_code == 200
    assert "<strong>VPN</strong>" in html_of(response)
    db.session.expire_all()
    row = db.session.get(Search, search_id)
    assert row.clicked_article_id == library.vpn and row.clicked_at is not None
    view = db.session.scalars(select(ArticleView)).one()
    assert (view.article_id, view.user_id, view.search_id) == \
        (library.vpn, people.employee.id, search_id)
    # Someone else's search id is not theirs to mark.
    signed_in(app, people.other).get(f"/portal/kb/articles/{library.vpn}?search={search_id}")
    assert count(ArticleView, ArticleView.search_id.is_not(None)) == 1


def test_agent_only_and_unpublished_articles_do_not_exist_on_the_portal(app, people, library):
    emma = signed_in(app, people.employee)
    token = emma.token("/portal/kb")
    for article_id in (library.internal, library.draft, 999999, 2**40):
        assert emma.get(f"/portal/kb/articles/{article_id}").status_code == 404
        response = emma.post(f"/portal/kb/articles/{article_id}/solved",
                             data={"csrf_token": token})
        assert response.status_code == 404
    assert "concentrator" not in html_of(emma.get("/portal/kb/suggest?q=concentrator"))
    assert count(ArticleView) == 0 and count(Deflection) == 0
    # Staff read agent-only articles on the portal, drafts only in the console.
    alex = signed_in(app, people.agent)
    assert alex.get(f"/portal/kb/articles/{library.internal}").status_code == 200
    assert alex.get(f"/portal/kb/articles/{library.draft}").status_code == 404


def test_article_markdown_is_rendered_without_any_script(app, people):
    article_id = publish(people, "Tricky", "<script>alert(1)</script>\n\n"
                         "[click](javascript:alert(1)) ![x](x onerror=alert(1))\n\n"
                         "<img src=x onerror=alert(1)>")
    html = html_of(signed_in(app, people.employee).get(f"/portal/kb/articles/{article_id}"))
    body = html.split('id="kb-body">', 1)[1].split("</div>", 1)[0]
    assert "<script" not in body and not re.search(r"<[a-z][^>]*\son\w+=", body)
    assert not [href for href in re.findall(r'href="([^"]*)"', body) if "javascript" in href]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_this_solved_my_problem_on_an_article_counts_a_deflection(app, people, library):
    emma = signed_in(app, people.employee)
    page = f"/portal/kb/articles/{library.vpn}"
    assert emma.post(page + "/solved").status_code == 400  # no CSRF token
    assert count(Deflection) == 0

    response = emma.post(page + "/solved", data={"csrf_token": emma.token(page)})

    assert response.status_code == 302
    deflection = db.session.scalars(select(Deflection)).one()
    assert (deflection.article_id, deflection.source, deflection.user_id) == \
        (library.vpn, "article", people.employee.id)
    assert "Glad it helped" in text_of(emma.get(page))


# --- suggestions on the new-incident form --------------------------------------------


def test_the_new_incident_form_asks_for_suggestions_with_a_session(app, people):
    html = html_of(signed_in(app, people.employee).get("/portal/new"))
    assert 'id="kb-suggestions"' in html and 'data-url="/portal/kb/suggest"' in html
    assert '<script src="/static/kb.js" defer></script>' in html
    sessions = _SESSION.findall(html)
    assert len(sessions) == 2 and sessions[0] == sessions[1]  # incident form and kb-solved
    assert len(sessions[0]) >= 16


def test_suggestions_follow_the_title_as_it_is_typed_and_log_one_search(app, people, library):
    emma = signed_in(app, people.employee)
    session = "s" * 22
    assert emma.get(f"/portal/kb/suggest?q=vp&session={session}").get_data() == b""
    for typed in ("vpn", "vpn dro", "VPN drops when at home"):
        response = emma.get(f"/portal/kb/suggest?q={typed}&session={session}")
        assert response.status_code == 200

    html = html_of(response)
    assert "VPN drops at home" in html and "concentrator" not in html
    assert f'form="kb-solved" name="kb_article" value="{library.vpn}"' in html
    [row] = db.session.scalars(select(Search)).all()
    assert (row.source, row.query, row.session, row.result_count) == \
        ("suggest", "VPN drops when at home", session, 1)
    assert emma.get("/portal/kb/suggest?q=" + "x" * 201).status_code == 400


def test_someone_elses_session_is_not_taken_over(app, people, library):
    session = "t" * 22
    signed_in(app, people.employee).get(f"/portal/kb/suggest?q=vpn&session={session}")
    signed_in(app, people.other).get(f"/portal/kb/suggest?q=router&session={session}")
    [row] = db.session.scalars(select(Search)).all()
    assert (row.user_id, row.query) == (people.employee.id, "vpn")


def test_solved_from_a_suggestion_raises_no_incident_and_counts_once(app, people, library):
    emma = signed_in(app, people.employee)
    page = html_of(emma.get("/portal/new"))
    session = _SESSION.search(page).group(1)
    token = _TOKEN.search(page).group(1)
    emma.get(f"/portal/kb/suggest?q=vpn+drops&session={session}")
    form = {"csrf_token": token, "kb_session": session, "kb_article": str(library.vpn)}

    response = emma.post("/portal/kb/solved", data=form)
    emma.post("/portal/kb/solved", data=form)  # clicked twice

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/portal/kb/articles/{library.vpn}")
    assert count(Incident) == 0
    deflection = db.session.scalars(select(Deflection)).one()
    search = db.session.scalars(select(Search)).one()
    assert (deflection.source, deflection.search_id, deflection.query) == \
        ("incident_form", search.id, "vpn drops")
    assert emma.post("/portal/kb/solved", data={**form, "kb_article": "x"}).status_code == 404
    assert emma.post("/portal/kb/solved", data={**form, "kb_article": str(library.internal)}
                     ).status_code == 404
    assert count(Deflection) == 1


def test_an_incident_after_searching_marks_those_searches(app, people, library):
    emma = signed_in(app, people.employee)
    emma.get("/portal/kb?q=router")                     # a search minutes before
    emma.get("/portal/kb?q=wifi")
    old = db.session.scalars(select(Search).where(Search.query == "wifi")).one()
    old.at -= timedelta(minutes=31)                    # too long ago to count
    db.session.commit()
    signed_in(app, people.other).get("/portal/kb?q=vpn")  # someone else's
    page = html_of(emma.get("/portal/new"))
    session = _SESSION.search(page).group(1)
    emma.get(f"/portal/kb/suggest?q=VPN+drops&session={session}")

    response = emma.post("/portal/new", data={"csrf_token": _TOKEN.search(page).group(1),
                                              "kb_session": session, "title": "VPN drops"})

    assert response.status_code == 302
    incident = db.session.scalars(select(Incident)).one()
    db.session.expire_all()
    marked = {s.query: s.ticket_id for s in db.session.scalars(select(Search))}
    assert marked == {"router": incident.id, "wifi": None, "vpn": None,
                      "VPN drops": incident.id}


# --- console -------------------------------------------------------------------------


def test_the_console_kb_does_not_exist_for_requesters(app, people, library):
    emma = signed_in(app, people.employee)
    for path in ("/console/kb", "/console/kb/new", f"/console/kb/articles/{library.vpn}",
                 f"/console/kb/articles/{library.vpn}/edit", "/admin/kb",
                 f"/console/kb/articles/{library.vpn}/diff?from=1&to=2"):
        assert emma.get(path).status_code == 404, path


def test_an_agent_writes_edits_and_submits_an_article(app, people):
    alex = signed_in(app, people.agent)
    response = alex.post("/console/kb/new", data={
        "csrf_token": alex.token("/console/kb/new"), "title": "Wi-Fi for guests",
        "body": "Connect to **Guest**.", "tags": "wifi, guests", "audience": "employees",
        "locale": "en", "owner": "agent1", "category_id": "", "service_id": ""})
    assert response.status_code == 302
    article = db.session.scalars(select(Article)).one()
    assert (article.title, article.tag_list, article.state) == \
        ("Wi-Fi for guests", ["wifi", "guests"], "draft")

    page = f"/console/kb/articles/{article.id}"
    edit = alex.get(page + "/edit")
    assert 'value="wifi, guests"' in html_of(edit)
    token = _TOKEN.search(html_of(edit)).group(1)
    form = {"csrf_token": token, "title": "Wi-Fi for visitors", "body": "Connect to <b>Guest</b>.",
            "tags": "wifi", "audience": "employees", "locale": "en", "owner": "agent1",
            "version": "1"}
    assert alex.post(page + "/edit", data=form).status_code == 302
    stale = alex.post(page + "/edit", data={**form, "title": "Lost"})
    assert stale.status_code == 409 and 'value="Wi-Fi for visitors"' in html_of(stale)

    detail = alex.get(page)
    assert "Submit for review" in text_of(detail) and "Publish" not in text_of(detail)
    alex.post(page + "/transition", data={"csrf_token": token, "to": "review", "version": "2"})
    db.session.expire_all()
    assert db.session.get(Article, article.id).state == "review"
    refused = alex.post(page + "/transition", data={"csrf_token": token, "to": "published"})
    assert refused.status_code == 403 and db.session.get(Article, article.id).state == "review"

    diff = alex.get(page + "/diff?from=1&to=2")
    assert "+Connect to &lt;b&gt;Guest&lt;/b&gt;." in html_of(diff)
    assert '<span class="diff-del">-Title: Wi-Fi for guests</span>' in html_of(diff)
    assert alex.get(page + "/diff?from=1&to=99").status_code == 404
    assert alex.get(page + "/diff?from=x").status_code == 400


def test_an_invalid_article_form_is_shown_again_with_the_reasons(app, people):
    alex = signed_in(app, people.agent)
    response = alex.post("/console/kb/new", data={
        "csrf_token": alex.token("/console/kb/new"), "title": "", "body": "kept",
        "tags": "a,b", "locale": "en", "audience": "employees", "owner": "agent1"})
    assert response.status_code == 422
    assert 'aria-invalid="true"' in html_of(response) and ">kept</textarea>" in html_of(response)
    assert count(Article) == 0


def test_an_article_from_a_resolved_incident_in_the_console(app, people):
    incident = incidents.create_incident(people.employee, {
        "title": "Teams has no sound", "description": "No sound in Teams calls."}, channel="web")
    alex = signed_in(app, people.agent)
    assert alex.get(f"/console/kb/new?from={incident.number}").status_code == 409  # unresolved
    incidents.transition_incident(people.agent, incident.number, {
        "to": "resolved", "resolution_code": "fixed",
        "resolution_notes": "Selected the headset as the output device."})

    form = alex.get(f"/console/kb/new?from={incident.number}")

    html = html_of(form)
    assert "No sound in Teams calls." in html and "Selected the headset" in html
    assert f'name="from" value="{incident.number}"' in html
    response = alex.post("/console/kb/new", data={
        "csrf_token": _TOKEN.search(html).group(1), "from": incident.number,
        "title": "Teams has no sound", "body": "Pick the headset.", "locale": "en",
        "audience": "employees", "owner": "agent1"})
    assert response.status_code == 302
    link = db.session.scalars(select(TicketLink)).one()
    assert link.ticket_id == incident.id
    page = html_of(alex.get(f"/console/kb/articles/{link.article_id}"))
    assert f'data-ticket="{incident.number}"' in page


def test_links_are_added_and_removed_in_the_console(app, people, library):
    incident = incidents.create_incident(people.employee, {"title": "VPN"}, channel="web")
    alex = signed_in(app, people.agent)
    page = f"/console/kb/articles/{library.vpn}"
    token = alex.token(page)

    assert alex.post(page + "/links", data={"csrf_token": token, "ticket": incident.number}
                     ).status_code == 302
    assert count(TicketLink) == 1
    unknown = alex.post(page + "/links", data={"csrf_token": token, "ticket": "INC999999"})
    assert unknown.status_code == 404 and 'role="alert"' in html_of(unknown)
    assert alex.post(page + f"/links/{incident.number}/delete", data={"csrf_token": token}
                     ).status_code == 302
    assert count(TicketLink) == 0


def test_admins_read_the_analytics_page(app, people, library):
    emma = signed_in(app, people.employee)
    emma.get("/portal/kb?q=vpn")
    emma.get("/portal/kb?q=printer")
    emma.post(f"/portal/kb/articles/{library.vpn}/solved",
              data={"csrf_token": emma.token(f"/portal/kb/articles/{library.vpn}")})

    response = signed_in(app, people.admin).get("/admin/kb?days=7")

    assert response.status_code == 200
    text = text_of(response)
    assert "Top queries" in text and "printer" in text
    assert re.search(r"Deflection rate 100\.0 %", text)
    assert signed_in(app, people.agent).get("/admin/kb").status_code == 403
    assert signed_in(app, people.admin).get("/admin/kb?days=0").status_code == 422


def test_kb_pages_carry_no_inline_script_and_a_token_per_form(app, people, library):
    emma, alex = signed_in(app, people.employee), signed_in(app, people.agent)
    admin = signed_in(app, people.admin)
    pages = [(emma, "/portal/kb?q=vpn"), (emma, f"/portal/kb/articles/{library.vpn}"),
             (emma, "/portal/new"), (alex, "/console/kb"), (alex, "/console/kb/new"),
             (alex, f"/console/kb/articles/{library.vpn}"),
             (alex, f"/console/kb/articles/{library.draft}/edit"), (admin, "/admin/kb"),
             (alex, f"/console/kb/articles/{library.vpn}/diff?from=1&to=3")]
    for client, path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        html = html_of(response)
        assert not re.search(r"<script(?![^>]*\ssrc=)|<style|\sstyle=|\son\w+=", html), path
        assert len(_TOKEN.findall(html)) == html.count("<form") - html.count('method="get"'), path
        assert response.headers["Cache-Control"] == "no-store" or path == "/portal/new", path


def test_a_resolved_incidents_page_offers_an_article_written_from_it(app, people):
    incident = incidents.create_incident(people.employee, {
        "title": "Outlook asks for the password again and again",
        "description": "Since this morning Outlook keeps asking."}, channel="web")
    alex = signed_in(app, people.agent)
    page = f"/console/incidents/{incident.number}"
    assert 'id="kb-from-incident"' not in html_of(alex.get(page))  # nothing to tell yet

    incidents.transition_incident(people.agent, incident.number, {
        "to": "resolved", "resolution_code": "fixed",
        "resolution_notes": "Removed the stale credentials."})
    link = re.search(r'<a href="([^"]+)" id="kb-from-incident"', html_of(alex.get(page)))
    assert link is not None
    editor = html_of(alex.get(unescape(link.group(1))))
    assert "Removed the stale credentials." in editor
