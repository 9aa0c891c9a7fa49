"""Self-service in a real browser: typing an incident's title brings up a matching
article, and "this solved my problem" ends it there, with no incident raised."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from servicedesk.extensions import db
from servicedesk.identity.service import get_user
from servicedesk.incidents.models import Incident
from servicedesk.kb import service as kb
from servicedesk.kb.models import Deflection, Search

pytestmark = pytest.mark.e2e

# Set to a directory to keep screenshots of the pages (never committed).
SHOTS = os.environ.get("SERVICEDESK_E2E_SCREENSHOTS")


def _publish(title: str, body: str) -> int:
    admin = get_user("ada")
    article = kb.create_article(admin, {"title": title, "body": body, "locale": "en"})
    kb.transition_article(admin, article.id, "review")
    kb.transition_article(admin, article.id, "published")
    return article.id


def _counts():
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Incident, Deflection, Search))


def test_a_suggested_article_solves_the_problem_without_a_ticket(live, sign_in):
    live.group("Service Desk", 1)
    live.user("admin", "ada")
    live.user("requester", "emma", display_name="Emma Employee")
    article_id = live.run(_publish, "VPN drops every few minutes",
                          "Restart your router, then reconnect the **VPN** client.")
    live.run(_publish, "Printer prints blank pages", "Replace the toner cartridge.")

    emma = sign_in("emma")
    emma.goto("/portal/new")
    emma.locator("input[name=title]").press_sequentially("my vpn keeps dropp", delay=20)

    suggestion = emma.locator(f"#kb-suggestions [data-article='{article_id}']")
    expect(suggestion).to_be_visible()
    expect(suggestion.locator("mark").first).to_have_text("vpn", ignore_case=True)
    expect(emma.locator("#kb-suggestions")).not_to_contain_text("Printer")
    if SHOTS:
        emma.screenshot(path=os.path.join(SHOTS, "kb-suggestions.png"), full_page=True)
    suggestion.get_by_role("button", name="This solved my problem").click()

    expect(emma.locator(".flash")).to_contain_text("no incident was raised")
    expect(emma.locator("#kb-title")).to_contain_text("VPN drops every few minutes")
    incidents, deflections, searches = live.run(_counts)
    assert (incidents, deflections, searches) == (0, 1, 1)
    assert emma.errors == []  # kb.js ran under the CSP without a complaint
