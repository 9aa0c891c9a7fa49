"""The incident life cycle in a real browser (chromium), portal and console together."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from servicedesk.incidents import service as incidents
from servicedesk.identity.service import get_user

pytestmark = pytest.mark.e2e

# Set to a directory to keep screenshots of the pages (never committed).
SHOTS = os.environ.get("SERVICEDESK_E2E_SCREENSHOTS")


def test_incident_life_cycle_in_the_browser(live, sign_in):
    live.group("Service Desk", 1)
    live.group("Network Team", 2)
    live.user("agent", "alex", groups=["Service Desk"], display_name="Alex Agent")
    live.user("requester", "emma", display_name="Emma Employee")

    # The employee raises an incident ...
    emma = sign_in("emma")
    emma.get_by_role("link", name="Report an incident").first.click()
    emma.fill("input[name=title]", "VPN drops every few minutes")
    emma.fill("textarea[name=description]", "Since this morning, at home.")
    emma.select_option("select[name=urgency]", "high")
    emma.get_by_role("button", name="Send").click()
    expect(emma.locator(".flash")).to_contain_text("has been raised")
    number = emma.locator("h1 .number").inner_text()
    assert re.fullmatch(r"INC\d{6}", number)
    # ... and finds it among "my incidents" with its number.
    emma.goto("/portal")
    row = emma.locator(f"tr[data-number={number}]")
    expect(row).to_contain_text("VPN drops every few minutes")
    expect(row).to_contain_text("Service Desk")  # with the first-line group for now

    # The agent sees it in the queue, takes it, replies, notes, resolves.
    alex = sign_in("alex")
    assert alex.url.endswith("/console")
    alex.locator(f"#queue tr[data-number={number}] a").click()
    alex.get_by_role("button", name="Take it").click()
    expect(alex.locator(".flash")).to_contain_text("is yours now")
    expect(alex.locator("#assignee")).to_have_text("Alex Agent")

    alex.fill("#comment-form textarea[name=body]", "Please restart your router and try again.")
    alex.get_by_role("button", name="Add comment").click()
    expect(alex.locator(".flash")).to_contain_text("Reply sent")
    alex.fill("#comment-form textarea[name=body]", "Their router firmware is from 2019.")
    alex.get_by_label("Internal note (IT staff only)").check()
    alex.get_by_role("button", name="Add comment").click()
    expect(alex.locator(".comment-internal")).to_contain_text("firmware is from 2019")
    expect(alex.locator(".comment-internal .badge")).to_have_text("Internal note")

    alex.select_option("#transition-form select[name=to]", "resolved")
    alex.select_option("#transition-form select[name=resolution_code]", "fixed")
    alex.fill("#transition-form textarea[name=resolution_notes]", "Router restarted; VPN stable.")
    if SHOTS:
        alex.screenshot(path=os.path.join(SHOTS, "console.png"), full_page=True)
    alex.locator("#transition-form button").click()
    expect(alex.locator("#status")).to_have_text("Resolved")

    # The employee sees the signed reply, not the note, and the resolution; reopens.
    emma.goto(f"/portal/incidents/{number}")
    reply = emma.locator(".comment", has_text="restart your router")
    expect(reply.locator(".author")).to_have_text("Alex Agent")
    expect(emma.locator("body")).not_to_contain_text("firmware")
    expect(emma.locator("body")).not_to_contain_text("Internal note")
    expect(emma.locator("#resolution")).to_contain_text("Router restarted; VPN stable.")
    emma.get_by_role("button", name="Reopen").click()
    expect(emma.locator(".flash")).to_contain_text("has been reopened")
    expect(emma.locator("#status")).to_have_text("In progress")

    # The agent escalates it to the second line; it leaves their queue.
    alex.reload()
    alex.fill("#escalate-form textarea[name=note]", "Looks like the VPN concentrator.")
    alex.get_by_role("button", name="Escalate to L2").click()
    expect(alex.locator(".flash")).to_contain_text("escalated")
    expect(alex.locator(f"tr[data-number={number}]")).to_have_count(0)

    def where_is_it():
        incident = incidents.get_incident(get_user("emma"), number)
        return incident.group.name, incident.support_line, incident.status, incident.reopen_count

    assert live.run(where_is_it) == ("Network Team", 2, "in_progress", 1)
    assert emma.errors == [] and alex.errors == []  # nothing refused by the CSP, no JS errors


def test_persian_user_gets_a_right_to_left_page(live, sign_in):
    live.user("requester", "parisa", locale="fa", display_name="Parisa")

    page = sign_in("parisa")

    html = page.locator("html")
    expect(html).to_have_attribute("dir", "rtl")
    expect(html).to_have_attribute("lang", "fa")
    # Logical properties at work: the brand sits at the right edge, sign-out at the left.
    brand = page.locator(".brand").bounding_box()
    signout = page.locator(".signout").bounding_box()
    assert brand["x"] > signout["x"]
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "portal-rtl.png"), full_page=True)
    assert page.errors == []
