"""The change workflow, as data.

draft → assessment → authorization → scheduled → implementing → review → closed, plus
rejected and cancelled. Which edges a change may take also depends on its type
(``TYPE_EDGES``): a standard change is pre-approved (draft → scheduled, no CAB); an
emergency change may skip the assessment (draft → authorization). Leaving
authorization is the approval's decision (the ``system`` role: the decision handler),
never a person's click.
"""

from __future__ import annotations

from servicedesk.tickets.workflow import Transition, Workflow, register_workflow

STAFF = frozenset({"agent", "manager", "admin"})
SYSTEM = frozenset({"system"})

PLANS = ("implementation_plan", "backout_plan", "test_plan")
WINDOW = ("planned_start", "planned_end")


def _t(source, target, roles=STAFF, requires=()):
    return Transition(source, target, frozenset(roles), tuple(requires))


CHANGE_WORKFLOW = register_workflow(Workflow(
    kind="change",
    initial="draft",
    states=("draft", "assessment", "authorization", "scheduled", "implementing", "review",
            "closed", "rejected", "cancelled"),
    final_states=frozenset({"closed", "rejected", "cancelled"}),
    done_states=frozenset({"closed", "rejected", "cancelled"}),
    transitions=(
        _t("draft", "assessment"),
        # Standard (pre-approved) changes only: no assessment, no approval.
        _t("draft", "scheduled", requires=PLANS + WINDOW),
        # Emergency changes only: straight to the emergency CAB.
        _t("draft", "authorization", requires=PLANS + WINDOW),
        _t("draft", "cancelled"),
        _t("assessment", "draft"),
        # Plans and the window are needed here: approval schedules at once.
        _t("assessment", "authorization", requires=PLANS + WINDOW),
        _t("assessment", "cancelled"),
        _t("authorization", "scheduled", SYSTEM),
        _t("authorization", "rejected", SYSTEM),
        _t("authorization", "cancelled"),
        _t("scheduled", "implementing"),
        _t("scheduled", "cancelled"),
        _t("implementing", "review"),
        _t("review", "closed", requires=("review_outcome",)),
    ),
))

# Edges only some types take (any edge not listed here is open to every type).
TYPE_EDGES = {
    ("draft", "scheduled"): {"standard"},
    ("draft", "authorization"): {"emergency"},
    ("draft", "assessment"): {"normal", "emergency"},
}


def allowed_for(change, role: str) -> list[str]:
    """The statuses ``role`` may move ``change`` to now (its type's edges only)."""
    return [target for target in CHANGE_WORKFLOW.allowed(change.status, role)
            if change.change_type in TYPE_EDGES.get((change.status, target),
                                                    {change.change_type})]
