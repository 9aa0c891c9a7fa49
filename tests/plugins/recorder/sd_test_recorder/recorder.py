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
