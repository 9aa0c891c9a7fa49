"""Demo data for ``servicedesk demo``: the only place default accounts exist. Idempotent."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from servicedesk import cmdb_links
from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.incidents.models import Incident
from servicedesk.incidents.service import create_incident, transition_incident
from servicedesk.problems.demo import seed_demo as seed_problems
from servicedesk.catalogue.demo import seed_demo as seed_catalogue
from servicedesk.changes.demo import seed_demo as seed_changes
from servicedesk.channels import seed_demo as seed_mail
from servicedesk.sla import admin as sla_admin
from servicedesk.sla.models import SlaCalendar, SlaPolicy
from servicedesk.sla.service import repair_clocks
from servicedesk.tickets.admin import create_category
from servicedesk.tickets.models import Category

DEMO_PASSWORD = "demo-password"

GROUPS = [
    ("Service Desk", 1, "First line: every employee's first contact."),
    ("Infrastructure", 2, "Second line: servers, network, storage."),
    ("Workplace", 2, "Second line: laptops, printers, software."),
    ("Engineering", 3, "Third line: the people who build the systems."),
]
USERS = [
    # username, role, display name, groups
    ("admin", "admin", "Ada Admin", []),
    ("manager", "manager", "Maria Manager", ["Service Desk", "Infrastructure", "Workplace"]),
    ("agent", "agent", "Alex Agent", ["Service Desk"]),
    ("l2agent", "agent", "Lee Second-Line", ["Infrastructure"]),
    ("l3agent", "agent", "Sam Engineer", ["Engineering"]),
    ("employee", "requester", "Emma Employee", []),
    ("employee2", "requester", "Omid Employee", []),
]
CATEGORIES = {
    ("Hardware", "Service Desk"): ["Laptop", "Printer", "Phone"],
    ("Software", "Service Desk"): ["E-mail", "Office", "Business application"],
    ("Network", "Service Desk"): ["VPN", "Wi-Fi"],
    ("Access", "Service Desk"): ["Password reset", "Permissions"],
}
# SLA: a Mon-Fri office day in Berlin (a real zone, so clocks cross DST correctly)
# and around the clock for what cannot wait.
WORKDAY = [["09:00", "17:00"]]
CALENDARS = [
    ("Business hours", "Europe/Berlin", {str(day): WORKDAY for day in range(5)}),
    ("24x7", "UTC", {str(day): [["00:00", "24:00"]] for day in range(7)}),
]
# SLAs are promises to the people IT serves: problems and changes get no clocks.
SLA_KINDS = ["incident", "request"]
POLICIES = [
    # name, calendar, rules, response minutes, resolution minutes
    ("P1 critical", "24x7", {"kinds": SLA_KINDS, "priorities": [1]}, 30, 4 * 60),
    ("Standard", "Business hours", {"kinds": SLA_KINDS}, 3 * 60, 8 * 60),
]
# Escalation steps (format: servicedesk.sla.escalation). Standard: respond within 3
# business hours or the assignee is told; resolve within 8 or the support manager (the
# group's manager) is told and the ticket turns red (level 3). Held to the recipient's
# working hours, except for P1, which cannot wait.
STEPS = {
    "P1 critical": [
        {"key": "response-breach", "metric": "response", "trigger": "breach",
         "actions": ["notify_assignee", "notify_group_manager"], "working_hours": False},
        {"key": "resolution-warning", "metric": "resolution", "trigger": "warning",
         "actions": ["notify_assignee", "raise_level"], "level": 2, "working_hours": False},
        {"key": "resolution-breach", "metric": "resolution", "trigger": "breach",
         "actions": ["notify_group_manager", "raise_level"], "level": 3,
         "working_hours": False},
    ],
    "Standard": [
        {"key": "response-breach", "metric": "response", "trigger": "breach",
         "actions": ["notify_assignee"]},
        {"key": "resolution-warning", "metric": "resolution", "trigger": "warning",
         "actions": ["notify_assignee", "raise_level"], "level": 1},
        {"key": "resolution-breach", "metric": "resolution", "trigger": "breach",
         "actions": ["notify_group_manager", "raise_level"], "level": 3},
    ],
}
INCIDENTS = [
    ("employee", "VPN drops every few minutes", "high", "medium", "Network", "VPN"),
    ("employee", "Printer on floor 3 prints blank pages", "low", "low", "Hardware", "Printer"),
    ("employee2", "Cannot open shared mailbox", "medium", "high", "Software", "E-mail"),
]


def seed_demo() -> list[tuple[str, str]]:
    for name, line, description in GROUPS:
        if identity.get_group(name) is None:
            identity.create_group(None, name, line, description)
    for username, role, display_name, groups in USERS:
        if identity.get_user(username) is None:
            identity.create_user(None, username, f"{username}@example.com", role, groups=groups,
                                 password=DEMO_PASSWORD, display_name=display_name)
    manager = identity.get_user("manager")
    for name, _line, _description in GROUPS[:3]:
        group = identity.get_group(name)
        if group.manager_id is None:
            group.manager = manager
    db.session.commit()
    seed_sla()
    vip_users = seed_vip()
    for (parent_name, group), children in CATEGORIES.items():
        parent = _category(parent_name, None) or create_category(None, parent_name, None, group)
        for child in children:
            if _category(child, parent.id) is None:
                create_category(None, child, parent.id)
    if not db.session.scalar(select(func.count()).select_from(Incident)):
        for username, title, impact, urgency, category, subcategory in INCIDENTS:
            parent = _category(category, None)
            create_incident(identity.get_user(username), {
                "title": title, "description": f"{title}. Reported from the demo seed.",
                "impact": impact, "urgency": urgency, "category_id": parent.id,
                "subcategory_id": _category(subcategory, parent.id).id,
            }, channel="web")
        first = db.session.scalars(select(Incident).order_by(Incident.id)).first()
        transition_incident(identity.get_user("agent"), first.number,
                            {"to": "assigned", "assignee": "agent"})
    repair_clocks()  # incidents seeded before the SLA policies existed get their clocks
    seed_kb()
    cmdb_links.seed_demo()  # CI classes, a small estate, the mailbox incident on its CI
    seed_problems()  # a known error linked to two of the incidents (servicedesk.problems)
    seed_catalogue()  # two services, "New laptop" and "VPN access" (servicedesk.catalogue)
    seed_changes()  # CAB groups, a standard template, a scheduled change, a month-end freeze
    seed_mail()  # an incident that came in by e-mail, with an attachment (servicedesk.channels)
    return [(u[0], u[1]) for u in USERS] + vip_users


def seed_kb() -> None:
    """Published knowledge-base articles in en/fa/ru/he (servicedesk.kb.demo)."""
    from servicedesk.kb.demo import seed_kb_articles

    seed_kb_articles(identity.get_user("agent"), identity.get_user("manager"))


def seed_sla() -> None:
    """The default calendars and policies (each created once, by name; never changed)."""
    calendars = {}
    for name, timezone, week in CALENDARS:
        row = db.session.scalars(select(SlaCalendar).where(SlaCalendar.name == name)).first()
        calendars[name] = row or sla_admin.create_calendar(
            None, {"name": name, "timezone": timezone, "week": week})
    for position, (name, calendar, rules, respond, resolve) in enumerate(POLICIES):
        if db.session.scalars(select(SlaPolicy).where(SlaPolicy.name == name)).first() is None:
            sla_admin.create_policy(None, {
                "name": name, "position": position * 10, "calendar_id": calendars[calendar].id,
                "response_minutes": respond, "resolution_minutes": resolve,
                "warning_percent": 75, "steps": STEPS.get(name, []), **rules,
            })


# The built-in plugin vip_sla halves the SLA targets of this group's members.
VIP_DESCRIPTION = "Requesters whose SLA targets are halved (plugin vip_sla); not a support team."
VIP_USERS = [("vip", "requester", "Vera VIP")]


def seed_vip() -> list[tuple[str, str]]:
    """The VIP group (SERVICEDESK_VIP_GROUP) with one demo requester; (username, role)s."""
    name = current_app.config.get("SERVICEDESK_VIP_GROUP") or "VIP"
    group = identity.get_group(name) or identity.create_group(None, name, 1, VIP_DESCRIPTION)
    for username, role, display_name in VIP_USERS:
        user = identity.get_user(username)
        if user is None:
            identity.create_user(None, username, f"{username}@example.com", role,
                                 groups=[group.name], password=DEMO_PASSWORD,
                                 display_name=display_name)
    return [(username, role) for username, role, _name in VIP_USERS]


def _category(name: str, parent_id: int | None) -> Category | None:
    where = Category.parent_id == parent_id if parent_id else Category.parent_id.is_(None)
    return db.session.scalars(select(Category).where(Category.name == name, where)).first()
