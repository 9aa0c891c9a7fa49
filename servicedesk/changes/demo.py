"""Demo data of change management (called by ``servicedesk.demo.seed_demo``). Idempotent:
each thing is made once, found by its name or title."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from sqlalchemy import select

from servicedesk.changes import admin, approval, service
from servicedesk.changes.models import Change, ChangeTemplate, FreezeWindow
from servicedesk.changes.risk import CAB, EMERGENCY_CAB
from servicedesk.extensions import db
from servicedesk.identity import service as identity

TEMPLATE = "Restart web server"
CHANGE = "Patch the mail server"
FREEZE = "Month-end close"
BOARDS = {CAB: ("manager", "l3agent"), EMERGENCY_CAB: ("manager", "l3agent")}


def seed_demo() -> None:
    for name, members in BOARDS.items():
        group = identity.get_group(name) or identity.create_group(
            None, name, 2, "Approves changes." if name == CAB else "Approves emergency changes.")
        for username in members:
            user = identity.get_user(username)
            if user is not None and group not in user.groups:
                identity.add_member(None, user, group)
    db.session.commit()
    root = identity.get_user("admin")
    if db.session.scalars(select(ChangeTemplate).where(ChangeTemplate.name == TEMPLATE)).first() \
            is None:
        admin.create_template(root, {
            "name": TEMPLATE, "description": "Rolling restart of the web tier.",
            "implementation_plan": "Drain one node at a time, restart the service, re-enable.",
            "backout_plan": "Re-enable the drained node without restarting.",
            "test_plan": "The health check answers 200 on every node."})
    today = datetime.now(timezone.utc).date()
    month_end = (today.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if db.session.scalars(select(FreezeWindow).where(FreezeWindow.name == FREEZE)).first() \
            is None:
        start = datetime.combine(month_end - timedelta(days=2), time(), tzinfo=timezone.utc)
        admin.create_freeze_window(root, {
            "name": FREEZE, "reason": "Finance closes the books.", "starts_at": start,
            "ends_at": start + timedelta(days=3)})
    agent = identity.get_user("l2agent")
    if agent is None or db.session.scalars(select(Change).where(Change.title == CHANGE)).first():
        return
    start = datetime.combine(today + timedelta(days=7), time(20), tzinfo=timezone.utc)
    for window in admin.list_freeze_windows(None, start, start + timedelta(hours=2),
                                            active_only=True):
        start = max(start, window.ends_at + timedelta(hours=20))  # not in the freeze
    change = service.create_change(agent, {
        "title": CHANGE, "description": "Monthly security update of the mail server.",
        "affected_cis": ["app-mail"],
        "risk_answers": {"users_affected": "none", "tested": "yes", "backout": "easy",
                         "downtime": "no"},
        "implementation_plan": "Install the update, reboot.",
        "backout_plan": "Uninstall the update, reboot.",
        "test_plan": "Send and receive a test mail.",
        "planned_start": start, "planned_end": start + timedelta(hours=2)})
    service.transition_change(agent, change.number, {"to": "assessment"})
    service.transition_change(agent, change.number, {"to": "authorization"})
    approval.decide_on(identity.get_user("manager"), change, {"decision": "approve"})
