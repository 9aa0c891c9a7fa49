"""Helpers of the problem pages: labels (through gettext) and form parsing.

Form payloads are built by ``servicedesk.web.helpers.payload``/``load`` and validated
by the API's own schemas, so a page and the API give the same reasons.
"""

from __future__ import annotations

import re

from servicedesk.i18n import N_


STATUS_LABELS = {
    "new": N_("New"),
    "investigating": N_("Investigating"),
    "known_error": N_("Known error"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
    "cancelled": N_("Cancelled"),
}
ACTION_LABELS = {
    "incident_linked": N_("Incident linked"),
    "incident_unlinked": N_("Incident unlinked"),
    "problem_linked": N_("Linked to a problem"),
    "problem_unlinked": N_("Unlinked from a problem"),
    "workaround_published": N_("Workaround published"),
}
FIELD_LABELS = {
    "root_cause": N_("Root cause"),
    "workaround": N_("Workaround"),
    "workaround_version": N_("Workaround version"),
    "known_error_at": N_("Known error since"),
    "incident_count": N_("Linked incidents"),
    "incidents": N_("Incidents"),
    "incident": N_("Incident"),
    "base_impact": N_("Impact (set)"),
    "problem": N_("Problem"),
    "resolve_incidents": N_("Resolve the linked incidents"),
    "incident_resolution_code": N_("Their resolution code"),
}
REASON_LABELS = {
    "ci": N_("same configuration item"),
    "category": N_("same category"),
    "text": N_("similar words"),
}


def incident_numbers(text: str | None) -> list[str]:
    """Incident numbers typed into a field: separated by commas, spaces or lines."""
    return [part.upper() for part in re.split(r"[\s,;]+", text or "") if part]


def ci_refs(text: str | None) -> list:
    """CI ids or external keys, separated by commas or lines (as on the incident page)."""
    parts = (p.strip() for p in re.split(r"[,\n]", text or ""))
    return [int(p) if p.isascii() and p.isdigit() and len(p) < 11 else p for p in parts if p]
