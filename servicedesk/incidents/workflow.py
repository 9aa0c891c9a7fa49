"""The incident workflow, as data."""

from __future__ import annotations

from servicedesk.tickets.workflow import Transition, Workflow, register_workflow

STAFF = frozenset({"agent", "manager", "admin"})
REQUESTER = frozenset({"requester"})
SYSTEM = frozenset({"system"})

PENDING_REASONS = ("awaiting_requester", "awaiting_vendor", "awaiting_change")
RESOLUTION_CODES = (
    "fixed",
    "workaround",
    "no_fault_found",
    "user_instructed",
    "duplicate",
    "cannot_reproduce",
    "out_of_scope",
)
RESOLVE = ("resolution_code", "resolution_notes")
PEND = ("pending_reason",)


def _t(source, target, roles=STAFF, requires=(), reopen=False):
    return Transition(source, target, frozenset(roles), tuple(requires), reopen)


INCIDENT_WORKFLOW = register_workflow(Workflow(
    kind="incident",
    initial="new",
    states=("new", "assigned", "in_progress", "pending", "resolved", "closed", "cancelled"),
    final_states=frozenset({"closed", "cancelled"}),
    done_states=frozenset({"resolved", "closed", "cancelled"}),
    transitions=(
        _t("new", "assigned", requires=("assignee",)),
        _t("new", "in_progress"),
        _t("new", "pending", requires=PEND),
        _t("new", "resolved", requires=RESOLVE),
        # A requester may withdraw what nobody has picked up yet.
        _t("new", "cancelled", STAFF | REQUESTER),
        _t("assigned", "in_progress"),
        _t("assigned", "pending", requires=PEND),
        _t("assigned", "resolved", requires=RESOLVE),
        _t("assigned", "cancelled"),
        _t("in_progress", "pending", requires=PEND),
        _t("in_progress", "resolved", requires=RESOLVE),
        _t("in_progress", "cancelled"),
        _t("pending", "in_progress"),
        _t("pending", "resolved", requires=RESOLVE),
        _t("pending", "cancelled"),
        # The requester confirms the fix, or the auto-close job closes it after N days.
        _t("resolved", "closed", STAFF | REQUESTER | SYSTEM),
        # Reopen: staff at any time before closure, the requester within the window.
        _t("resolved", "in_progress", STAFF | REQUESTER, reopen=True),
    ),
    pending_reasons=PENDING_REASONS,
))
