"""Workflows as data: each ticket kind declares its states and transitions in one table.

The service layer enforces the table: an illegal transition is a ``Conflict`` (409)
naming the transitions that are allowed from the current status for this actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _

from servicedesk.errors import Conflict, Forbidden


@dataclass(frozen=True)
class Transition:
    source: str
    target: str
    roles: frozenset[str]
    # Fields the request must carry (they are validated by the kind's schema).
    requires: tuple[str, ...] = ()
    # Requesters may take this transition only on their own tickets (always the case:
    # they see no others); staff take it on any ticket they can see.
    reopen: bool = False


@dataclass
class Workflow:
    kind: str
    initial: str
    states: tuple[str, ...]
    # Final: nothing more happens (no comments, no edits).
    final_states: frozenset[str]
    # Waiting on nobody in IT: out of the queues (final states plus e.g. "resolved").
    done_states: frozenset[str]
    transitions: tuple[Transition, ...] = field(default_factory=tuple)
    # Values of ``tickets.pending_reason`` this kind uses (SLA pause rules name them).
    pending_reasons: tuple[str, ...] = ()

    def __post_init__(self):
        self._by_edge = {(t.source, t.target): t for t in self.transitions}
        unknown = {s for t in self.transitions for s in (t.source, t.target)} - set(self.states)
        if unknown:
            raise ValueError(f"{self.kind} workflow names unknown states {sorted(unknown)}")

    def is_open(self, status: str) -> bool:
        """True while IT still has work on it: this is what ``tickets.is_open`` stores."""
        return status not in self.done_states

    def is_final(self, status: str) -> bool:
        return status in self.final_states

    def allowed(self, status: str, role: str) -> list[str]:
        return [t.target for t in self.transitions if t.source == status and role in t.roles]

    def check(self, status: str, target: str, role: str) -> Transition:
        """Return the transition ``status`` → ``target`` if ``role`` may take it."""
        if target not in self.states:
            raise Conflict(
                _("Unknown status %(target)s.", target=repr(target)),
                fields={"to": [_("Must be one of: %(states)s.", states=", ".join(self.states))]},
                code="invalid_transition",
            )
        transition = self._by_edge.get((status, target))
        allowed = self.allowed(status, role)
        allowed_text = ", ".join(allowed) or _("none")
        if transition is None:
            raise Conflict(
                _("Cannot move from %(source)s to %(target)s; allowed: %(allowed)s.",
                  source=status, target=target, allowed=allowed_text),
                fields={"to": [_("Allowed from %(source)s: %(allowed)s.",
                                 source=status, allowed=allowed_text)]},
                code="invalid_transition",
            )
        if role not in transition.roles:
            raise Forbidden(
                _("Your role may not move a ticket from %(source)s to %(target)s; "
                  "allowed: %(allowed)s.", source=status, target=target, allowed=allowed_text),
                fields={"to": [_("Allowed for you from %(source)s: %(allowed)s.",
                                 source=status, allowed=allowed_text)]},
            )
        return transition


# Every ticket kind's workflow, by kind: what the kind-independent parts (SLA pause
# rules and policy match rules) validate against. A kind registers at import.
WORKFLOWS: dict[str, Workflow] = {}


def register_workflow(workflow: Workflow) -> Workflow:
    WORKFLOWS[workflow.kind] = workflow
    return workflow
