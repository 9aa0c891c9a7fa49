"""Knowledge-base articles through the API: writing, the life cycle, versions and their
diff, who sees what (requesters never see agent-only articles), links to tickets and
articles written from a resolved incident. Every error is a 4xx naming the field."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from servicedesk.extensions import db
from servicedesk.incidents import service as incidents
from servicedesk.kb.models import Article, ArticleVersion, Deflection, TicketLink
from servicedesk.tickets.admin import create_category


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def error(response, status) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()["error"]
    assert set(body) == {"code", "message", "fields"}
    return body


@pytest.fixture
def apis(world, desk):
    class Apis:
        agent = world.api(desk.agent)
        other_agent = world.api(desk.l2_agent)
        manager = world.api(desk.manager)
        admin = world.api(desk.admin)
        employee = world.api(desk.employee)

    return Apis


def write(api, **fields) -> dict:
    body = {"title": "Reset your password", "body": "Go to **Settings**.", **fields}
    response = api.post("/kb/articles", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def publish(apis, article) -> dict:
    step = apis.agent.post(f"/kb/articles/{article['id']}/transition", json={"to": "review"})
    assert step.status_code == 200, step.get_json()
    step = apis.manager.post(f"/kb/articles/{article['id']}/transition", json={"to": "published"})
    assert step.status_code == 200, step.get_json()
    return step.get_json()


def resolved_incident(desk, **fields):
    incident = incidents.create_incident(desk.employee, {
        "title": "Outlook asks for the password again and again",
        "description": "Since this morning Outlook keeps asking for my password.", **fields,
    }, channel="web")
    incidents.transition_incident(desk.agent, incident.number, {
        "to": "resolved", "resolution_code": "fixed",
        "resolution_notes": "Removed the stale credentials from the Windows credential manager."})
    return incident


# --- writing -------------------------------------------------------------------------


def test_an_agent_writes_a_draft_owned_by_them_with_a_first_version(app, desk, apis):
    category = create_category(None, "Access")
    article = write(apis.agent, tags=["Password", " Outlook ", "password"], locale="ru",
                    category_id=category.id, service_id=7, audience="agents")

    assert (article["state"], article["version"], article["owner"]) == ("draft", 1, "agent1")
    assert article["tags"] == ["password", "outlook"]
    assert (article["locale"], article["category"], article["service_id"]) == ("ru", "Access", 7)
    assert article["body_html"] == "<p>Go to <strong>Settings</strong>.</p>\n"
    assert article["allowed_transitions"] == ["review"]
    [version] = apis.agent.get(f"/kb/articles/{article['id']}/versions").get_json()
    assert (version["number"], version["actor"], version["action"]) == (1, "agent1", "created")
    assert "title" in version["changes"] and "tags" in version["changes"]


def test_requesters_write_nothing(app, desk, apis):
    error(apis.employee.post("/kb/articles", json={"title": "Mine"}), 403)
    assert count(Article) == 0


def test_the_state_is_not_a_field(app, desk, apis):
    body = error(apis.agent.post("/kb/articles", json={"title": "x", "state": "published"}), 403)
    assert set(body["fields"]) == {"state"}
    assert count(Article) == 0


BAD = [
    ({}, "title", 422),
    ({"title": ""}, "title", 422),
    ({"title": "x" * 201}, "title", 422),
    ({"title": "x", "locale": "xx"}, "locale", 422),
    ({"title": "x", "audience": "everyone"}, "audience", 422),
    ({"title": "x", "category_id": 999}, "category_id", 422),
    ({"title": "x", "category_id": 2**31}, "category_id", 422),
    ({"title": "x", "service_id": 0}, "service_id", 422),
    ({"title": "x", "owner": "emma"}, "owner", 422),
    ({"title": "x", "owner": "nobody"}, "owner", 422),
    ({"title": "x", "tags": ["a,b"]}, "tags", 422),
    ({"title": "x", "tags": ["x" * 41]}, "tags", 422),
    ({"title": "x", "tags": "vpn"}, "tags", 422),
    ({"title": "x", "tags": [str(n) for n in range(21)]}, "tags", 422),
    ({"title": "x", "body": 5}, "body", 422),
    ({"title": "x", "body": "x" * 100_001}, "body", 422),
    ({"title": "x", "colour": "red"}, "colour", 422),
]


def test_bad_articles_are_refused_naming_the_field(app, desk, apis):
    for body, field, status in BAD:
        assert field in error(apis.agent.post("/kb/articles", json=body), status)["fields"], body
    assert count(Article) == 0 and count(ArticleVersion) == 0


# --- life cycle and versions ---------------------------------------------------------


def test_draft_review_published_archived_with_roles(app, desk, apis):
    article = write(apis.agent)
    path = f"/kb/articles/{article['id']}/transition"

    body = error(apis.agent.post(path, json={"to": "published"}), 409)
    assert body["code"] == "invalid_transition" and "review" in body["message"]
    assert apis.agent.post(path, json={"to": "review", "version": 1}).status_code == 200
    assert error(apis.agent.post(path, json={"to": "published"}), 403)["fields"] == {
        "to": ["Managers and admins publish and archive articles."]}
    published = apis.manager.post(path, json={"to": "published"}).get_json()
    assert published["state"] == "published" and published["published_at"]
    assert error(apis.agent.post(path, json={"to": "nowhere"}), 422)["fields"].keys() == {"to"}
    assert apis.admin.post(path, json={"to": "archived"}).get_json()["state"] == "archived"

    history = apis.agent.get(f"/kb/articles/{article['id']}/versions").get_json()
    assert [(v["number"], v["actor"], v["state"]) for v in history] == [
        (1, "agent1", "draft"), (2, "agent1", "review"), (3, "boss", "published"),
        (4, "root", "archived")]


def test_agents_edit_drafts_managers_also_published_nobody_archived(app, desk, apis):
    article = publish(apis, write(apis.agent))
    path = f"/kb/articles/{article['id']}"

    error(apis.agent.patch(path, json={"title": "Agent fix", "version": 3}), 403)
    edited = apis.manager.patch(path, json={"title": "Manager fix", "version": 3})
    assert edited.status_code == 200 and edited.get_json()["version"] == 4
    apis.admin.post(path + "/transition", json={"to": "archived"})
    assert error(apis.manager.patch(path, json={"title": "x", "version": 5}), 409)["code"] == \
        "article_archived"
    assert apis.agent.get(path).get_json()["title"] == "Manager fix"


def test_a_stale_edit_is_a_409_and_changes_nothing(app, desk, apis):
    article = write(apis.agent)
    path = f"/kb/articles/{article['id']}"
    assert apis.agent.patch(path, json={"body": "New text", "version": 1}).status_code == 200

    body = error(apis.manager.patch(path, json={"body": "Lost?", "version": 1}), 409)
    assert body["code"] == "stale_version" and "version" in body["fields"]
    assert error(apis.agent.patch(path, json={"body": "x"}), 422)["fields"].keys() == {"version"}
    assert apis.agent.get(path).get_json()["body"] == "New text"
    assert count(ArticleVersion) == 2


def test_an_edit_that_changes_nothing_adds_no_version(app, desk, apis):
    article = write(apis.agent)
    response = apis.agent.patch(f"/kb/articles/{article['id']}",
                                json={"title": article["title"], "version": 1})
    assert response.get_json()["version"] == 1
    assert count(ArticleVersion) == 1


def test_two_versions_are_compared_as_an_escaped_unified_diff(app, desk, apis):
    article = write(apis.agent, body="Step one.\nStep two.")
    path = f"/kb/articles/{article['id']}"
    apis.agent.patch(path, json={"body": "Step one.\nStep <b>2</b>.", "tags": ["vpn"],
                                 "version": 1})

    diff = apis.agent.get(path + "/diff?from=1&to=2").get_json()

    assert (diff["from"], diff["to"]) == (1, 2)
    assert "-Step two." in diff["unified"] and "+Step <b>2</b>." in diff["unified"]
    assert "+Tags: vpn" in diff["unified"]
    kinds = {line["text"]: line["kind"] for line in diff["lines"]}
    assert kinds["-Step two."] == "del" and kinds[" Step one."] == "same"
    body = error(apis.agent.get(path + "/diff?from=1&to=9"), 404)
    assert body["fields"] == {"to": ["No version 9."]}
    assert error(apis.agent.get(path + "/diff?from=1"), 400)["fields"].keys() == {"to"}
    error(apis.employee.get(path + "/versions"), 404)  # a draft: it does not exist for them


# --- who sees what -------------------------------------------------------------------


def test_requesters_never_see_agent_only_or_unpublished_articles(app, desk, apis):
    public = publish(apis, write(apis.agent, title="VPN for everyone", body="Open the VPN app."))
    internal = publish(apis, write(apis.agent, title="VPN concentrator restart",
                                   body="Restart the VPN concentrator.", audience="agents"))
    draft = write(apis.agent, title="VPN draft", body="VPN notes.")

    listed = [a["id"] for a in apis.employee.get("/kb/articles").get_json()["items"]]
    found = [h["article"]["id"] for h in apis.employee.get("/kb/search?q=vpn").get_json()["items"]]
    suggested = [h["article"]["id"]
                 for h in apis.employee.get("/kb/suggest?q=vpn").get_json()["items"]]
    assert listed == found == suggested == [public["id"]]
    for hidden in (internal, draft):
        error(apis.employee.get(f"/kb/articles/{hidden['id']}"), 404)
        error(apis.employee.get(f"/kb/articles/{hidden['id']}/links"), 404)
        error(apis.employee.post("/kb/deflections", json={"article_id": hidden["id"]}), 404)
    assert apis.employee.get("/kb/articles?audience=agents").get_json()["items"] == []
    assert apis.employee.get("/kb/articles?state=draft").get_json()["items"] == []

    staff = {a["id"] for a in apis.other_agent.get("/kb/articles").get_json()["items"]}
    assert staff == {public["id"], internal["id"], draft["id"]}
    suggested = {h["article"]["id"] for h in apis.agent.get("/kb/suggest?q=vpn").get_json()["items"]}
    assert suggested == {public["id"], internal["id"]}  # published only, both audiences


def test_the_list_pages_and_filters(app, desk, apis):
    ids = [write(apis.agent, title=f"Article {n}", tags=["even" if n % 2 else "odd"],
                 locale="fa" if n == 4 else "en")["id"] for n in range(5)]
    first = apis.agent.get("/kb/articles?limit=2").get_json()
    second = apis.agent.get(f"/kb/articles?limit=2&cursor={first['next_cursor']}").get_json()
    assert [a["id"] for a in first["items"] + second["items"]] == ids[::-1][:4]
    assert {a["id"] for a in apis.agent.get("/kb/articles?tag=even").get_json()["items"]} == \
        {ids[1], ids[3]}
    assert [a["id"] for a in apis.agent.get("/kb/articles?locale=fa").get_json()["items"]] == \
        [ids[4]]
    assert apis.agent.get("/kb/articles?tag=%25").get_json()["items"] == []  # not a wildcard
    for query in ("state=nope", "limit=0", "cursor=-1", "colour=red", "audience=all"):
        assert error(apis.agent.get(f"/kb/articles?{query}"), 400)["code"] == "bad_query"
    assert [a["id"] for a in apis.agent.get("/kb/articles?owner=agent1").get_json()["items"]] \
        == ids[::-1][:5]
    assert error(apis.agent.get("/kb/articles?owner=ghost"), 422)["fields"].keys() == {"owner"}
    assert error(apis.employee.get("/kb/articles?owner=ghost"), 403)["fields"].keys() == {"owner"}
    error(apis.agent.get("/kb/search"), 400)
    error(apis.agent.get("/kb/search?q=" + "x" * 201), 400)


# --- tickets -------------------------------------------------------------------------


def test_an_article_from_a_resolved_incident_is_prefilled_and_linked(app, desk, apis):
    category = create_category(None, "Software")
    incident = resolved_incident(desk, category_id=category.id)

    article = apis.agent.post("/kb/articles/from-ticket", json={"ticket": incident.number})

    assert article.status_code == 201, article.get_json()
    article = article.get_json()
    assert article["title"] == incident.title and article["state"] == "draft"
    assert "Since this morning Outlook keeps asking" in article["body"]
    assert "Removed the stale credentials" in article["body"]
    assert article["category_id"] == category.id
    links = apis.agent.get(f"/kb/articles/{article['id']}/links").get_json()
    assert [(link["ticket"], link["kind"]) for link in links] == [(incident.number, "incident")]


def test_an_unresolved_or_unseen_ticket_gives_no_article(app, desk, apis):
    open_one = incidents.create_incident(desk.employee, {"title": "Still broken"}, channel="web")
    body = error(apis.agent.post("/kb/articles/from-ticket", json={"ticket": open_one.number}), 409)
    assert body["code"] == "ticket_not_resolved" and "ticket" in body["fields"]
    body = error(apis.agent.post("/kb/articles/from-ticket", json={"ticket": "INC999999"}), 404)
    assert "ticket" in body["fields"]
    error(apis.employee.post("/kb/articles/from-ticket", json={"ticket": open_one.number}), 403)
    assert count(Article) == 0


def test_articles_are_linked_to_tickets_they_may_see(app, desk, apis, world):
    article = publish(apis, write(apis.agent))
    incident = resolved_incident(desk)
    path = f"/kb/articles/{article['id']}/links"

    assert apis.agent.post(path, json={"ticket": incident.number}).status_code == 201
    assert apis.agent.post(path, json={"ticket": incident.number}).status_code == 201  # once
    assert count(TicketLink) == 1
    listed = apis.employee.get(f"/kb/tickets/{incident.number}/articles").get_json()
    assert [a["id"] for a in listed] == [article["id"]]
    assert apis.employee.get(path).get_json() == []  # links are for staff
    error(apis.employee.post(path, json={"ticket": incident.number}), 403)

    # A ticket of another group's queue does not exist for an agent outside it.
    hidden = incidents.create_incident(desk.employee, {"title": "Elsewhere"}, channel="web")
    incidents.update_incident(desk.admin, hidden.number, {"group": "Engineering",
                                                          "version": hidden.version})
    assert "ticket" in error(apis.agent.post(path, json={"ticket": hidden.number}), 404)["fields"]
    error(apis.other_agent.get(f"/kb/tickets/{hidden.number}/articles"), 404)

    assert apis.agent.request("DELETE", path + f"/{incident.number}").status_code == 204
    assert count(TicketLink) == 0
    assert "ticket" in error(apis.agent.request("DELETE", path + f"/{incident.number}"), 404)["fields"]


# --- deflections and analytics through the API ---------------------------------------


def test_a_channel_records_a_deflection(app, desk, apis):
    article = publish(apis, write(apis.agent))
    response = apis.employee.post("/kb/deflections",
                                  json={"article_id": article["id"], "query": "forgot password"})
    assert response.status_code == 201
    assert (response.get_json()["source"], response.get_json()["query"]) == \
        ("api", "forgot password")
    assert count(Deflection) == 1
    assert "article_id" in error(apis.employee.post("/kb/deflections", json={}), 422)["fields"]
    figures = apis.admin.get("/kb/analytics").get_json()
    assert (figures["deflections"], figures["deflection_rate"]) == (1, 1.0)


def test_analytics_are_for_admins(app, desk, apis):
    assert apis.admin.get("/kb/analytics?days=7").status_code == 200
    error(apis.manager.get("/kb/analytics"), 403)
    error(apis.employee.get("/kb/analytics"), 403)
    assert error(apis.admin.get("/kb/analytics?days=0"), 400)["fields"].keys() == {"days"}
    assert error(apis.admin.get("/kb/analytics?days=x"), 400)["fields"].keys() == {"days"}


def test_the_api_needs_a_token(app, world):
    assert error(world.api(None).get("/kb/articles"), 401)["code"] == "unauthorized"


def test_the_openapi_document_describes_the_kb(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/api/v1/kb/articles", "/api/v1/kb/search", "/api/v1/kb/suggest",
            "/api/v1/kb/deflections", "/api/v1/kb/analytics"} <= set(paths)


FIELDS = ["title", "body", "category_id", "service_id", "tags", "audience", "locale", "owner",
          "state", "version", "to", "ticket", "article_id", "query"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
                    st.text(max_size=20), st.sampled_from(["en", "fa", "agents", "review",
                                                           "published", "INC000001", "", "\x00"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
BODIES = st.one_of(VALUES, st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=BODIES, path=st.sampled_from(["/kb/articles", "/kb/articles/{id}", "/kb/articles/{id}/transition",
                                          "/kb/articles/{id}/links", "/kb/articles/from-ticket",
                                          "/kb/deflections"]),
       who=st.sampled_from(["employee", "agent", "admin"]))
def test_no_body_makes_the_kb_api_fail(app, desk, apis, body, path, who):
    article_id = getattr(apis, "_fuzz_article", None)
    if article_id is None:
        article_id = apis._fuzz_article = publish(apis, write(apis.agent))["id"]
    method = "PATCH" if path == "/kb/articles/{id}" else "POST"
    response = getattr(apis, who).request(method, path.format(id=article_id), json=body)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert set(response.get_json()["error"]) == {"code", "message", "fields"}
