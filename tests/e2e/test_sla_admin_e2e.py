"""An admin edits an SLA calendar in a real browser (chromium)."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from servicedesk.extensions import db
from servicedesk.sla import admin as sla_admin
from servicedesk.sla.models import SlaCalendar

pytestmark = pytest.mark.e2e

SHOTS = os.environ.get("SERVICEDESK_E2E_SCREENSHOTS")


def test_an_admin_edits_a_calendars_hours_and_holidays(live, sign_in):
    live.user("admin", "root", display_name="Rita Root")
    live.run(lambda: sla_admin.create_calendar(None, {
        "name": "Office", "timezone": "Europe/Berlin",
        "week": {str(d): [["09:00", "17:00"]] for d in range(5)}}))

    page = sign_in("root")
    page.get_by_role("link", name="SLA settings").click()
    page.get_by_role("link", name="Office").click()
    expect(page.get_by_label("Monday")).to_have_value("09:00-17:00")

    # A typo first: refused next to the field, nothing saved.
    page.get_by_label("Monday").fill("08:00-12:00, 11:00-16:00")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#week-error")).to_contain_text("overlap")
    expect(page.get_by_label("Monday")).to_have_value("08:00-12:00, 11:00-16:00")

    page.get_by_label("Monday").fill("08:00-12:00, 13:00-16:00")
    page.get_by_label("Saturday").fill("10:00-14:00")
    page.locator("textarea[name=holidays]").fill("2026-12-24..2026-12-26\n2026-12-31")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "sla-calendar.png"), full_page=True)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("has been saved")
    expect(page.get_by_label("Monday")).to_have_value("08:00-12:00, 13:00-16:00")

    def stored():
        row = db.session.scalars(db.select(SlaCalendar)).one()
        return row.version, row.week["0"], row.week.get("5"), row.holidays

    assert live.run(stored) == (2, [["08:00", "12:00"], ["13:00", "16:00"]],
                                [["10:00", "14:00"]],
                                [["2026-12-24", "2026-12-26"], "2026-12-31"])
    # Nothing refused by the CSP, no JS errors; only the refused typo's 422 is reported.
    assert [e for e in page.errors if "status of 422" not in e] == []
