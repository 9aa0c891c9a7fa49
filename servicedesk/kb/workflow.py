"""The article life cycle as data: draft → review → published → archived.

Kept apart from the ticket workflows (``tickets.workflow.WORKFLOWS`` lists ticket
kinds, which SLA rules validate against): an article is not a ticket.
"""

from __future__ import annotations

STATES = ("draft", "review", "published", "archived")
AUDIENCES = ("employees", "agents")

STAFF = frozenset({"agent", "manager", "admin"})
# Publishing is the review's outcome: someone other than a plain agent signs it off.
PUBLISHERS = frozenset({"manager", "admin"})

# (from, to) -> roles that may take the step.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    ("draft", "review"): STAFF,
    ("review", "draft"): STAFF,
    ("review", "published"): PUBLISHERS,
    ("published", "draft"): PUBLISHERS,
    ("published", "archived"): PUBLISHERS,
    ("archived", "draft"): PUBLISHERS,
}

# States whose articles each role may edit (archived articles go back to draft first).
EDITABLE = {
    "agent": frozenset({"draft", "review"}),
    "manager": frozenset({"draft", "review", "published"}),
    "admin": frozenset({"draft", "review", "published"}),
}


def allowed(state: str, role: str) -> list[str]:
    """The states ``role`` may move an article in ``state`` to, in workflow order."""
    return [target for (source, target), roles in TRANSITIONS.items()
            if source == state and role in roles]
