"""Every hook servicedesk calls, each documented: when it fires, what it gets, what it returns.

Plugins implement these with ``servicedesk.plugins.hookimpl``. Lifecycle hooks fire
from the service layer only, after the change has been committed, so a plugin always
sees saved data and can never undo or break the change; one that raises is logged
and the next plugin still runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from servicedesk.identity.models import User
    from servicedesk.tickets.models import AuditEntry, Comment, Ticket

hookspec = pluggy.HookspecMarker("servicedesk")


# -------------------------------------------------------------------------------------
# ticket lifecycle
# -------------------------------------------------------------------------------------


@hookspec
def servicedesk_ticket_created(ticket: Ticket, actor: User | None) -> None:
    """A ticket of any kind (incident, ...) was created and committed.

    :param ticket: the new ticket; ``ticket.kind`` says which process it belongs to.
    :param actor: who created it (``None`` for the system).
    :return: ignored.
    """


@hookspec
def servicedesk_ticket_updated(
    ticket: Ticket, actor: User | None, changes: list[AuditEntry]
) -> None:
    """Fields of a ticket changed (an edit, an assignment, an escalation).

    :param ticket: the ticket after the change.
    :param actor: who changed it (``None`` for the system).
    :param changes: the audit entries written for this change, one per field, each
        with ``field``, ``old_value`` and ``new_value``.
    :return: ignored.
    """


@hookspec
def servicedesk_ticket_transitioned(
    ticket: Ticket, actor: User | None, from_status: str, to_status: str
) -> None:
    """A ticket moved along its workflow (for example ``in_progress`` → ``resolved``).

    :param ticket: the ticket after the transition.
    :param actor: who moved it (``None`` for the system, e.g. the auto-close job).
    :param from_status: the status before.
    :param to_status: the status after.
    :return: ignored.
    """


@hookspec
def servicedesk_ticket_commented(ticket: Ticket, comment: Comment, actor: User) -> None:
    """A public reply or an internal note was added to a ticket.

    :param ticket: the ticket.
    :param comment: the comment; ``comment.public`` is ``False`` for internal notes,
        which must never reach the requester.
    :param actor: the author.
    :return: ignored.
    """
