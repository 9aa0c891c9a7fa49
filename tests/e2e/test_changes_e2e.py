"""A normal change walked in a real browser: raised with its risk questionnaire, sent
to authorization, approved by the group's manager on the change page, then on the
calendar."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from servicedesk.extensions import db
from servicedesk.identity.service import get_group, get_user

pytestmark = pytest.mark.e2e


def test_a_normal_change_from_form_to_calendar_in_the_browser(live, sign_in):
    live.group("Service Desk", 1)
    live.user("agent", "alex", groups=["Service Desk"], display_name="Alex Agent")
    live.user("manager", "maria", groups=["Service Desk"], display_name="Maria Manager")

    def make_maria_the_manager():
        get_group("Service Desk").manager_id = get_user("maria").id
        db.session.commit()

    live.run(make_maria_the_manager)
    start = (datetime.now(timezone.utc) + timedelta(days=7)).replace(hour=9, minute=0)

    alex = sign_in("alex")
    alex.get_by_role("link", name="Changes").first.click()
    alex.get_by_role("link", name="Raise a change").click()
    alex.fill("input[name=title]", "Patch the mail server")
    alex.fill("textarea[name=implementation_plan]", "Install the update.")
    alex.fill("textarea[name=backout_plan]", "Uninstall it.")
    alex.fill("textarea[name=test_plan]", "Send a mail.")
    alex.fill("input[name=planned_start]", start.strftime("%Y-%m-%dT%H:%M"))
    alex.fill("input[name=planned_end]", (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    for name, value in (("users_affected", "none"), ("tested", "yes"), ("backout", "easy"),
                        ("downtime", "no")):
        alex.check(f"input[name=risk_{name}][value={value}]")
    alex.get_by_role("button", name="Raise the change").click()
    expect(alex.locator(".flash")).to_contain_text("raised as a draft")
    expect(alex.locator("#risk")).to_have_text("Low risk")
    alex.locator("#to-assessment button").click()
    alex.locator("#to-authorization button").click()
    expect(alex.locator("section.approvals")).to_contain_text("Maria Manager")
    expect(alex.locator(".approval-decision")).to_have_count(0)  # not his to approve

    maria = sign_in("maria")
    maria.goto(alex.url)
    maria.get_by_role("button", name="Approve").click()
    maria.goto(alex.url)
    expect(maria.locator(".page-head")).to_contain_text("Scheduled")

    alex.goto(f"/changes/calendar?view=week&date={start.date().isoformat()}")
    expect(alex.locator("#calendar")).to_contain_text("Patch the mail server")
    assert alex.errors == [] and maria.errors == []
