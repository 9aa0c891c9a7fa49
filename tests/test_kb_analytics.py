"""The knowledge-base figures, computed on hand-built data with known answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from servicedesk.errors import Forbidden, ValidationError
from servicedesk.extensions import db
from servicedesk.incidents import service as incidents
from servicedesk.kb import analytics
from servicedesk.kb import service as kb
from servicedesk.kb.models import ArticleView, Deflection, Search
from servicedesk.types import utcnow


@pytest.fixture
def figures(desk):
    """30 days of activity, plus older rows that must not count."""
    now = utcnow().replace(microsecond=0)
    recent, old = now - timedelta(days=2), now - timedelta(days=40)
    a = kb.create_article(desk.agent, {"title": "VPN at home"})
    b = kb.create_article(desk.agent, {"title": "Printer toner"})
    ticket = incidents.create_incident(desk.employee, {"title": "VPN down"}, channel="web")

    def search(query, results, at=recent, clicked=None, ticket_id=None):
        db.session.add(Search(at=at, user_id=desk.employee.id, source="search", query=query,
                              query_key=analytics.search.query_key(query), result_count=results,
                              clicked_article_id=clicked, ticket_id=ticket_id))

    search("vpn", 2, clicked=a.id)
    search("VPN", 2, ticket_id=ticket.id)
    search("vpn ", 2)
    search("Printer  toner", 0)
    search("printer toner", 0)
    search("wifi", 0, ticket_id=ticket.id)
    search("vpn", 2, at=old)
    for article, at in ((a, recent), (a, recent), (a, recent), (b, recent), (a, old)):
        db.session.add(ArticleView(article_id=article.id, user_id=desk.employee.id, at=at))
    for article, at in ((a, recent), (a, recent), (b, recent), (b, old)):
        db.session.add(Deflection(article_id=article.id, user_id=desk.employee.id, at=at,
                                  source="incident_form"))
    db.session.commit()
    # Portal tickets in the period: this one and two more; one by API and an old one don't count.
    for title, channel, at in (("Printer", "web", recent), ("Wi-Fi", "web", recent),
                               ("Via API", "api", recent), ("Long ago", "web", old)):
        incident = incidents.create_incident(desk.employee, {"title": title}, channel=channel)
        incident.created_at = at
    db.session.commit()
    return {"now": now, "a": a.id, "b": b.id}


def test_the_figures_of_the_period(app, desk, figures):
    result = analytics.kb_analytics(desk.admin, 30, now=figures["now"])

    assert (result["searches"], result["zero_result_searches"],
            result["searches_followed_by_ticket"], result["searches_with_click"]) == (6, 3, 2, 1)
    assert [(q["query"], q["searches"], q["zero_results"], q["tickets"], q["clicks"])
            for q in result["top_queries"]] == [
        ("vpn", 3, 0, 1, 1), ("printer toner", 2, 2, 0, 0), ("wifi", 1, 1, 1, 0)]
    assert [(q["query"], q["searches"]) for q in result["zero_result_queries"]] == [
        ("printer toner", 2), ("wifi", 1)]
    assert [(x["id"], x["count"]) for x in result["most_viewed"]] == \
        [(figures["a"], 3), (figures["b"], 1)]
    assert [(x["id"], x["count"]) for x in result["most_helpful"]] == \
        [(figures["a"], 2), (figures["b"], 1)]
    # 3 deflections, 3 incidents raised on the portal: half the problems needed no ticket.
    assert (result["deflections"], result["portal_tickets"], result["deflection_rate"]) == \
        (3, 3, 0.5)


def test_a_longer_period_takes_the_older_rows_in(app, desk, figures):
    result = analytics.kb_analytics(desk.admin, 60, now=figures["now"])
    assert (result["searches"], result["deflections"], result["portal_tickets"]) == (7, 4, 4)
    assert result["top_queries"][0] == {"query": "vpn", "searches": 4, "zero_results": 0,
                                        "tickets": 1, "clicks": 1}


def test_no_activity_has_no_rate(app, desk):
    result = analytics.kb_analytics(desk.admin)
    assert (result["searches"], result["deflection_rate"], result["top_queries"]) == (0, None, [])


def test_only_admins_and_only_sensible_periods(app, desk):
    with pytest.raises(Forbidden):
        analytics.kb_analytics(desk.manager)
    for days in (0, -1, analytics.MAX_DAYS + 1, True, "30"):
        with pytest.raises(ValidationError) as refused:
            analytics.kb_analytics(desk.admin, days)
        assert set(refused.value.fields) == {"days"}
