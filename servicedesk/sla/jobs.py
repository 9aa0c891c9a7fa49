"""Background work of SLA escalation. Jobs take ids (JSON), never objects.

``fire_due`` is what ``refresh_clocks`` schedules with RQ's ``enqueue_at`` at a clock's
next step instant (job id ``sla-<ticket>-<metric>-<step>``); ``sweep`` is the periodic
reconciliation (``PERIODIC_JOBS["sla-sweep"]``, every minute; in-process every 15 s).
Both are idempotent and safe to run any number of times at once: see
``servicedesk.sla.escalation``.
"""

from __future__ import annotations

from servicedesk.sla import escalation, ola


def fire_due(ticket_id: int) -> int:
    """Fire the ticket's due escalation steps (a job a little early waits for its
    instant), then whatever else is due by then, for up to two seconds: a burst of due
    tickets is fired by the first job to run, not by one forked job each in turn.
    How many steps and events fired."""
    return escalation.fire_due(int(ticket_id), wait=True) + escalation.help_due()


def sweep() -> int:
    """Everything due, from the indexed ``sla_clocks.next_step_at``: with Redis, one
    fire_due job per due ticket (every worker shares a backlog; how many were
    enqueued); in-process, fired here (how many fired). Then the OLA warnings and
    breaches due (``ola_clocks``), told here: at most one event per clock and kind."""
    return escalation.dispatch() + ola.sweep_olas()
