from servicedesk.plugins import hookimpl

ARMED = False


@hookimpl
def servicedesk_ticket_created(ticket, actor):
    if ARMED:
        raise RuntimeError("exploder plugin failed on purpose")
