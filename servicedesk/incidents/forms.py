"""Labels of the incident pages and the humanized durations of the console.

The form plumbing every kind's pages share (``payload``, ``load``, ``flatten``,
``label``, ``N_``, the group/assignee choices) lives in ``servicedesk.web.helpers``.
"""

from __future__ import annotations

from flask_babel import gettext

from servicedesk.i18n import N_

# --- labels (every word a person reads goes through gettext) -------------------------


STATUS_LABELS = {
    "new": N_("New"),
    "assigned": N_("Assigned"),
    "in_progress": N_("In progress"),
    "pending": N_("Pending"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
    "cancelled": N_("Cancelled"),
}
LEVEL_LABELS = {"high": N_("High"), "medium": N_("Medium"), "low": N_("Low")}
PENDING_LABELS = {
    "awaiting_requester": N_("Awaiting the requester"),
    "awaiting_vendor": N_("Awaiting a vendor"),
    "awaiting_change": N_("Awaiting a change"),
}
RESOLUTION_LABELS = {
    "fixed": N_("Fixed"),
    "workaround": N_("Workaround"),
    "no_fault_found": N_("No fault found"),
    "user_instructed": N_("User instructed"),
    "duplicate": N_("Duplicate"),
    "cannot_reproduce": N_("Cannot reproduce"),
    "out_of_scope": N_("Out of scope"),
}
ACTION_LABELS = {
    "created": N_("Created"),
    "updated": N_("Updated"),
    "assigned": N_("Assigned"),
    "transition": N_("Status change"),
    "commented": N_("Public reply"),
    "internal_note": N_("Internal note"),
    "escalated": N_("Escalated"),
    "requester_replied": N_("Requester replied"),
    "sla_policy": N_("SLA policy"),
    "sla_targets": N_("SLA targets"),
}
FIELD_LABELS = {
    "title": N_("Title"),
    "description": N_("Description"),
    "impact": N_("Impact"),
    "urgency": N_("Urgency"),
    "priority": N_("Priority"),
    "category_id": N_("Category"),
    "subcategory_id": N_("Subcategory"),
    "category": N_("Category"),
    "subcategory": N_("Subcategory"),
    "status": N_("Status"),
    "to": N_("New status"),
    "group": N_("Group"),
    "support_line": N_("Support line"),
    "assignee": N_("Assignee"),
    "pending_reason": N_("Pending reason"),
    "resolution_code": N_("Resolution code"),
    "resolution_notes": N_("Resolution notes"),
    "resolved_at": N_("Resolved at"),
    "closed_at": N_("Closed at"),
    "reopen_count": N_("Times reopened"),
    "number": N_("Number"),
    "body": N_("Text"),
    "public": N_("Visibility"),
    "note": N_("Note"),
    "version": N_("Version"),
    "affected_cis": N_("Affected CIs"),
    "cursor": N_("Page"),
    "sort": N_("Sort"),
    "sla_policy": N_("SLA policy"),
    "sla_targets": N_("SLA targets"),
    "_schema": N_("Form"),
}


def humanize_seconds(seconds) -> str:
    """How long, for people: "under a minute", "42 min", "3 h 12 min", "2 d 4 h"."""
    seconds = max(0, int(seconds or 0))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return gettext("under a minute")
    if seconds < 3600:
        return gettext("%(m)d min", m=minutes)
    if seconds < 86400:
        return gettext("%(h)d h %(m)d min", h=hours, m=minutes % 60)
    return gettext("%(d)d d %(h)d h", d=days, h=hours % 24)
