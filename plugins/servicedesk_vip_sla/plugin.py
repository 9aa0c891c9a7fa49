"""Hook implementations of the VIP SLA plugin (registered by the ``vip_sla`` entry point).

Requesters who belong to the group named by ``SERVICEDESK_VIP_GROUP`` (default
``"VIP"``; empty turns the plugin off) get half of the matched policy's response and
resolution targets, rounded up to whole minutes and never below one. The policy
itself (calendar, pause statuses, warning threshold, escalation steps) stays.

Membership is read from the database on every call (one indexed query, and only when
a policy matched), never cached: the hook must answer the same for the same committed
data, so that ``servicedesk sla repair`` after someone joins or leaves the group gives
the clocks they would always have had, keeping elapsed and paused time.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from servicedesk.extensions import db
from servicedesk.identity.models import Group, group_members
from servicedesk.plugins import hookimpl

CONFIG_KEY = "SERVICEDESK_VIP_GROUP"
DEFAULT_GROUP = "VIP"


def halved(minutes: int | None) -> int | None:
    """Half a target, rounded up, at least one minute (None: no target stays none)."""
    if minutes is None:
        return None
    return max(1, (minutes + 1) // 2)


def is_vip(user_id: int | None) -> bool:
    """Whether the user is a member of the configured VIP group."""
    name = current_app.config.get(CONFIG_KEY, DEFAULT_GROUP)
    if not name or user_id is None:
        return False
    return db.session.scalar(
        select(group_members.c.user_id)
        .join(Group, Group.id == group_members.c.group_id)
        .where(group_members.c.user_id == user_id, Group.name == name)
        .limit(1)
    ) is not None


@hookimpl
def servicedesk_sla_policy(ticket, policy):
    """Halve the targets of a VIP requester's ticket; leave everyone else's alone."""
    if policy is None or (policy.response_minutes is None and policy.resolution_minutes is None):
        return None
    requester_id = ticket.requester_id
    if requester_id is None and ticket.requester is not None:
        requester_id = ticket.requester.id
    if not is_vip(requester_id):
        return None
    targets = {"response_minutes": halved(policy.response_minutes),
               "resolution_minutes": halved(policy.resolution_minutes)}
    return {key: value for key, value in targets.items() if value is not None}
