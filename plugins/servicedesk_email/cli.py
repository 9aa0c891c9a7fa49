"""``servicedesk mail ...``: the e-mail channel's commands (hook ``servicedesk_cli_commands``).

``servicedesk mail ingest`` is what an MTA pipes a message into. Its exit status follows
sysexits.h, which is what MTAs act on: 0 taken in or ignored; 75 (EX_TEMPFAIL) our side
failed, keep the message and retry; 65 (EX_DATAERR) malformed and 77 (EX_NOPERM)
refused, both bounced to the sender with our one-line reason. Never a traceback.
"""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

EXIT = {"rejected": 77, "malformed": 65, "failed": 75}


def _channel():
    from servicedesk.channels import get_channel

    channel = get_channel("email")
    if channel is None:
        click.echo("the email plugin is disabled", err=True)
        raise SystemExit(EXIT["failed"])
    return channel


def _line(result) -> str:
    return " ".join(f"{result.status}: {result.ticket_number or ''} {result.reason}".split())


@click.group("mail")
def mail():
    """Inbound e-mail (the ``email`` channel)."""


@mail.command("ingest")
@with_appcontext
def ingest():
    """Read one RFC 5322 message on stdin and take it in (for an MTA pipe).

    Exit 0 when taken in or ignored (duplicate, auto-reply); otherwise one line on
    stderr and 77 refused, 65 malformed, 75 try again later.
    """
    raw = sys.stdin.buffer.read()
    try:
        result = _channel().ingest(raw)
    except SystemExit:
        raise
    except Exception as exc:  # e.g. the database is away: the MTA should retry
        click.echo(f"failed: {type(exc).__name__}, try again later", err=True)
        raise SystemExit(EXIT["failed"]) from None
    if result.ok:
        click.echo(_line(result))
        return
    click.echo(_line(result), err=True)
    kind = "malformed" if result.reason.startswith("malformed") else result.status
    raise SystemExit(EXIT.get(kind, 1))


@mail.command("poll")
@with_appcontext
def poll():
    """Poll the configured IMAP folder once."""
    try:
        results = _channel().poll()
    except SystemExit:
        raise
    except Exception as exc:
        raise click.ClickException(f"poll failed: {exc}") from None
    for result in results:
        click.echo(" ".join(f"{result.message_id} {_line(result)}".split()))
    click.echo(f"{len(results)} message(s)")


@mail.command("log")
@click.option("--status", type=click.Choice(["processed", "ignored", "rejected", "failed"]),
              default=None, help="Only messages with this outcome.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@with_appcontext
def log(status, limit):
    """The latest inbound messages and what became of them, newest first."""
    from servicedesk.attachments.service import list_inbound_messages

    for row in list_inbound_messages(None, status, limit=limit):  # None: the system

        ticket = row.ticket.number if row.ticket is not None else "-"
        click.echo(f"{row.received_at:%Y-%m-%d %H:%M} {row.status:9} {ticket:10} "
                   f"{row.sender or '-'} {row.message_id} {row.reason}".rstrip())
