"""The problem workflow, as data. Only IT staff work problems; requesters have no edge."""

from __future__ import annotations

from servicedesk.tickets.workflow import Transition, Workflow, register_workflow

STAFF = frozenset({"agent", "manager", "admin"})

# A known error has a documented root cause and a workaround (given in the transition's
# request or already saved on the problem).
KNOWN_ERROR = ("root_cause", "workaround")
RESOLVE = ("resolution_notes",)
# What the linked incidents are resolved with when a problem's resolution resolves them.
INCIDENT_RESOLUTION_CODES = ("fixed", "workaround")


def _t(source, target, requires=(), reopen=False):
    return Transition(source, target, STAFF, tuple(requires), reopen)


PROBLEM_WORKFLOW = register_workflow(Workflow(
    kind="problem",
    initial="new",
    states=("new", "investigating", "known_error", "resolved", "closed", "cancelled"),
    final_states=frozenset({"closed", "cancelled"}),
    done_states=frozenset({"resolved", "closed", "cancelled"}),
    transitions=(
        _t("new", "investigating"),
        _t("new", "known_error", requires=KNOWN_ERROR),
        _t("new", "cancelled"),
        _t("investigating", "known_error", requires=KNOWN_ERROR),
        _t("investigating", "resolved", requires=RESOLVE),
        _t("investigating", "cancelled"),
        # Back to investigating: the known error turned out to be something else.
        _t("known_error", "investigating"),
        # Typically fixed by a change.
        _t("known_error", "resolved", requires=RESOLVE),
        _t("known_error", "cancelled"),
        _t("resolved", "closed"),
        # The fix did not hold.
        _t("resolved", "investigating", reopen=True),
    ),
))
