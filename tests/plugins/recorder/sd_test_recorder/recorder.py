import click
from flask import Blueprint, abort, jsonify
from flask_login import current_user

from servicedesk.plugins import hookimpl

EVENTS: list[tuple] = []


@hookimpl
def servicedesk_ticket_created(ticket, actor):
    EVENTS.append(("created", ticket.number, actor.username if actor else None))


@hookimpl
def servicedesk_ticket_updated(ticket, actor, changes):
    EVENTS.append(("updated", ticket.number, sorted(e.field for e in changes)))


@hookimpl
def servicedesk_ticket_transitioned(ticket, actor, from_status, to_status):
    EVENTS.append(("transitioned", ticket.number, from_status, to_status))


@hookimpl
def servicedesk_ticket_commented(ticket, comment, actor):
    EVENTS.append(("commented", ticket.number, comment.public))


@hookimpl
def servicedesk_sla_policy(ticket, policy):
    """Titles choose the SLA: "[sla-policy=NAME]" supplies policy NAME, "[sla-none]" none."""
    from sqlalchemy import select

    from servicedesk.extensions import db
    from servicedesk.sla.models import SlaPolicy

    title = ticket.title or ""
    if "[sla-none]" in title:
        return {"policy": None}
    if "[sla-policy=" in title:
        name = title.split("[sla-policy=", 1)[1].split("]", 1)[0]
        return {"policy": db.session.scalars(
            select(SlaPolicy).where(SlaPolicy.name == name)).one()}
    return None


# --- extending the web, the CLI and the admin pages ---------------------------------------

pages = Blueprint("recorder", __name__, url_prefix="/recorder")


@pages.get("/events")
def recorded_events():
    """Admins see how many lifecycle events the recorder heard."""
    if not current_user.is_authenticated or current_user.role != "admin":
        abort(404)
    return jsonify(count=len(EVENTS), events=[list(event) for event in EVENTS])


@click.command("recorder-count")
@click.option("--kind", default="incident")
def count_command(kind):
    """Print how many tickets of KIND exist (needs the app context: reads the database)."""
    from sqlalchemy import func, select

    from servicedesk.extensions import db
    from servicedesk.tickets.models import Ticket

    count = db.session.scalar(select(func.count()).select_from(Ticket)
                              .where(Ticket.kind == kind))
    click.echo(f"{count} {kind} ticket(s), {len(EVENTS)} event(s) recorded")


@hookimpl
def servicedesk_blueprints():
    return [pages]


@hookimpl
def servicedesk_cli_commands():
    return [count_command]


@hookimpl
def servicedesk_admin_pages():
    return [("Recorded events", "recorder.recorded_events")]
