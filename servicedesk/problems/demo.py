"""Demo data: one known error linked to two of the demo incidents. Idempotent."""

from __future__ import annotations

from sqlalchemy import select

from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.incidents.models import Incident
from servicedesk.problems.models import Problem
from servicedesk.problems.service import create_problem, transition_problem

TITLE = "Firewall idle timeout cuts long-lived connections"
INCIDENT_TITLES = ("VPN drops every few minutes", "Cannot open shared mailbox")


def seed_demo() -> None:
    if db.session.scalars(select(Problem.id).where(Problem.title == TITLE)).first():
        return
    manager = db.session.scalars(select(User).where(User.username == "manager")).first()
    numbers = [n for n in (db.session.scalars(
        select(Incident.number).where(Incident.title == title).order_by(Incident.id)).first()
        for title in INCIDENT_TITLES) if n]
    if manager is None or not numbers:
        return
    problem = create_problem(manager, {
        "title": TITLE, "urgency": "medium", "incidents": numbers,
        "description": "VPN tunnels and mail sessions idle for five minutes are dropped.",
    })
    transition_problem(manager, problem.number, {
        "to": "known_error",
        "root_cause": "The edge firewall closes TCP sessions idle for more than 300 s.",
        "workaround": "Reconnect the VPN client with keep-alive on (Settings > Advanced), "
                      "or use webmail until the firewall change is made.",
    })
