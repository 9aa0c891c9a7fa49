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
    from servicedesk.sla.models import SlaPolicy
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


# -------------------------------------------------------------------------------------
# SLA
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def servicedesk_sla_policy(ticket: Ticket, policy: SlaPolicy | None) -> dict | None:
    """Supply or adjust the SLA policy and targets of a ticket.

    Called whenever a ticket's clocks are computed (on every change, and by
    ``servicedesk sla repair``), inside the transaction, after the built-in match
    rules chose ``policy``. The first plugin that returns something decides; one that
    raises or returns an invalid answer is logged and skipped, and the next is asked
    (``servicedesk.plugins.call_first_hook``). It must be a pure function of the ticket
    and its committed relations (same answer every time), because clocks are
    recomputed from history. Read little and write nothing: it runs on every change.

    :param ticket: the ticket (any kind); read ``ticket.requester``, ``ticket.priority``...
    :param policy: the policy the match rules chose, or ``None``.
    :return: ``None`` to keep the built-in choice, or a dict with any of ``policy``
        (an :class:`~servicedesk.sla.models.SlaPolicy`, or ``None`` for no SLA),
        ``response_minutes`` and ``resolution_minutes`` (business minutes > 0 that
        replace the policy's targets for this ticket).
    """


@hookspec
def servicedesk_sla_event(ticket: Ticket, metric: str, event: str, step: dict | None) -> None:
    """An SLA clock of a ticket reached its warning, was breached, or an escalation step fired.

    Called after the step's effects were committed, once per (ticket, metric, step)
    however many workers race for it.

    :param ticket: the ticket.
    :param metric: ``"response"``, ``"resolution"``, or ``"ola:<group id>"`` for an OLA
        (``"ola:<group id>:response"`` for its response target).
    :param event: ``"warning"``, ``"breach"`` or ``"step"``.
    :param step: the escalation step (its JSON: ``key``, ``trigger``, ``actions``...).
    :return: ignored.
    """


# -------------------------------------------------------------------------------------
# notifications
# -------------------------------------------------------------------------------------


@hookspec
def servicedesk_notifiers() -> list:
    """Notification backends this plugin provides.

    Called once per delivery batch. Each backend is an object with a ``name``
    (``"email"``, the value of ``notifications.backend`` rows it delivers) and a
    ``send(message)`` method taking a :class:`servicedesk.notify.service.Message`
    (``address``, ``subject``, ``body_text``, ``body_html``, ``headers``, ``dedupe_key``,
    ``ticket_number``). ``send`` returns on success and raises on failure: an exception
    is retried with exponential back-off, :class:`servicedesk.notify.service.PermanentFailure`
    is not. A backend may also have ``address_for(user)``, returning the user's address
    for it or ``None``; rows for backends other than ``"email"`` take their address
    from it.

    :return: a list of backends.
    """


# -------------------------------------------------------------------------------------
# inbound channels
# -------------------------------------------------------------------------------------


@hookspec
def servicedesk_channels() -> list:
    """Inbound channels this plugin provides (e-mail, chat, ...).

    Called when a channel is needed (``servicedesk.channels.get_channel``): by the
    periodic job ``poll-channels``, and by the plugin's own commands (the built-in
    ``email`` plugin's ``servicedesk mail ingest|poll``). Each channel is an
    object with a ``name`` (``"email"``; tickets it raises carry it as their channel) and
    any of: ``ingest(raw: bytes)`` (one message handed in, e.g. by an MTA pipe) and
    ``poll()`` (fetch and process what is waiting; called every minute by the job, so
    it must be idempotent and cheap when there is nothing to do, and may skip a run).
    Both return :class:`servicedesk.channels.InboundResult` (``poll`` a list of them)
    and must raise nothing for a bad message: it is a ``"rejected"`` result. Channels
    create and comment tickets through the service functions, with the sender as the
    actor, and record each message in ``inbound_messages`` (one row per message id).

    :return: a list of channels.
    """


# -------------------------------------------------------------------------------------
# CMDB
# -------------------------------------------------------------------------------------


@hookspec
def servicedesk_ci_classes() -> list[dict]:
    """CI classes this plugin defines for the CMDB.

    Called before every CMDB change, by ``servicedesk cmdb sync-classes`` and by
    ``POST /api/v1/cmdb/classes/sync``; the classes are written to the table by key
    (created, or updated to match), so CIs can use them. Admins cannot edit them. A
    definition that is invalid, or whose key an admin's class already uses, is logged
    and ignored. Must be cheap and return the same every time.

    :return: a list of class definitions, each a dict with ``key`` (``a-z0-9_``),
        ``name``, optionally ``parent`` (a class key: its attributes are inherited),
        ``description``, ``service_type`` (``"business"``, ``"technical"`` or ``None``)
        and ``attributes``: a list of ``{"name", "type", "label", "required", "help"}``
        where ``type`` is one of ``string``, ``integer``, ``decimal``, ``boolean``,
        ``date``, ``enum`` (with ``choices``), ``reference`` (with an optional
        ``ci_class``) or ``ip_address``.
    """


# -------------------------------------------------------------------------------------
# plugin settings
# -------------------------------------------------------------------------------------


@hookspec
def servicedesk_settings_schema():
    """The marshmallow schema of this plugin's settings, which admins edit.

    Not called through the hook relay: servicedesk asks each plugin for its own schema
    when admins list plugins or save settings (web ``/admin/plugins``,
    ``/api/v1/admin/plugins/<name>/settings``, ``servicedesk plugins settings``), and
    when the plugin reads its settings with ``servicedesk.plugins.plugin_settings(name)``.
    Saved settings are validated by the schema (a refused field is named in the 422).
    A field with ``metadata={"secret": True}`` is write-only: admins see only "set" or
    "not set", and a secret left out of a save keeps its value.

    :return: a :class:`marshmallow.Schema` subclass or instance (``None``: no settings).
    """


# -------------------------------------------------------------------------------------
# extending the web, the CLI and the admin pages
# -------------------------------------------------------------------------------------


@hookspec
def servicedesk_blueprints() -> list:
    """Flask blueprints (pages, endpoints) this plugin adds to the web application.

    Called once per plugin at application creation, directly (not time-boxed: there
    is no request yet), for every loaded plugin, enabled or not: routes cannot be added
    later. While an admin has the plugin disabled, every route of its blueprints
    answers 404. Blueprints are CSRF-protected like every page; an endpoint that
    authenticates its callers otherwise (a signature) exempts itself with
    ``servicedesk.extensions.csrf.exempt``. Each blueprint checks its own permissions.

    :return: a list of :class:`flask.Blueprint`.
    """


@hookspec
def servicedesk_cli_commands() -> list:
    """click commands (or groups) this plugin adds to the ``servicedesk`` command.

    Called once per plugin at application creation, directly, for every loaded plugin;
    a command of a disabled plugin exits with an error saying so. Commands run with the
    application context pushed (as ``flask.cli.with_appcontext``); a name already taken
    by servicedesk or another plugin is logged and skipped.

    :return: a list of :class:`click.Command`.
    """


@hookspec
def servicedesk_admin_pages() -> list:
    """Admin pages this plugin offers, linked from the admin's plugin page.

    Called when the plugin page renders (time-boxed and isolated, enabled plugins only).
    The pages themselves are usually routes of the plugin's ``servicedesk_blueprints``,
    which must check that the user is an admin.

    :return: a list of ``(title, endpoint)`` pairs: a title to show and the Flask
        endpoint name to link to (``url_for(endpoint)``, no arguments).
    """
