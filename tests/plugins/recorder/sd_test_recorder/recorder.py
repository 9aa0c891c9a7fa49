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
