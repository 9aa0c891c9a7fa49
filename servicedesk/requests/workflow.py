"""The service-request workflow, as data.

submitted → (approval rule) awaiting_approval → approved → in_fulfilment → fulfilled →
closed; rejected and cancelled end it early. The moves out of ``submitted`` and
``awaiting_approval`` are the system's: they follow from the offering's approval rule
and from the approvers' decision, never from a transition request.
"""

from __future__ import annotations

from servicedesk.tickets.workflow import Transition, Workflow, register_workflow

STAFF = frozenset({"agent", "manager", "admin"})
REQUESTER = frozenset({"requester"})
SYSTEM = frozenset({"system"})


def _t(source, target, roles=STAFF, requires=(), reopen=False):
    return Transition(source, target, frozenset(roles), tuple(requires), reopen)


REQUEST_WORKFLOW = register_workflow(Workflow(
    kind="request",
    initial="submitted",
    states=("submitted", "awaiting_approval", "approved", "in_fulfilment", "fulfilled",
            "closed", "rejected", "cancelled"),
    final_states=frozenset({"closed", "rejected", "cancelled"}),
    done_states=frozenset({"fulfilled", "closed", "rejected", "cancelled"}),
    transitions=(
        _t("submitted", "awaiting_approval", SYSTEM),
        _t("submitted", "approved", SYSTEM),
        _t("awaiting_approval", "approved", SYSTEM),
        _t("awaiting_approval", "rejected", SYSTEM),
        # The requester may withdraw until someone starts on it; staff until fulfilled.
        _t("awaiting_approval", "cancelled", STAFF | REQUESTER),
        _t("approved", "in_fulfilment"),
        _t("approved", "cancelled", STAFF | REQUESTER),
        _t("in_fulfilment", "approved"),  # handed back to the fulfilment queue
        _t("in_fulfilment", "fulfilled", requires=("resolution_notes",)),
        _t("in_fulfilment", "cancelled"),
        _t("fulfilled", "closed", STAFF | REQUESTER | SYSTEM),
        # Not what was asked for: back to fulfilment.
        _t("fulfilled", "in_fulfilment", STAFF | REQUESTER, reopen=True),
    ),
))
